"""The features check family: discovery reads what a model declares, every assertion fails
on a toy that plants its bug (with a message naming what differed) and passes on the
correct toys, on the CPU and structurally on the meta device, and the suite collects the
cases a model declares. Toys: tests/toys/toy_feature_models.py."""
from __future__ import annotations

import pytest

from harness.checks import features
from harness.checks.pretrained import make_source
from harness.models.facts import facts_for
from tests.helpers import run_suites
from tests.toys import toy_feature_models  # noqa: F401 - registers the toys


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-sources")


def reference(name: str, workdir, device: str = "cpu"):
    """The FeatureReference the suite builds for a model (and its checkpoint state_dict)."""
    facts = facts_for(name)
    source = make_source(name, device, workdir, facts.input_size)
    key = str(source.files.get("safetensors", "meta"))
    return features.reference(name, device, facts.features, facts.input_size, source.overlay(device), key), source


def run_check(name: str, check: str, case: str | None, workdir, device: str = "cpu") -> None:
    ref, source = reference(name, workdir, device)
    if check == "out_indices":
        features.check_out_indices(ref, case)
    elif check == "intermediates":
        features.check_intermediates(ref, case)
    elif check == "wrapper":
        features.check_wrapper(ref, case)
    elif check == "prune":
        features.check_prune(ref)
    elif check == "pretrained":
        features.check_features_pretrained(ref, source.state_dict)
    elif check == "script":
        features.check_script(ref)


def test_discovery_reads_the_declared_support():
    ff = facts_for("toy_feat_ok").features
    assert (ff.levels, ff.default_cls, ff.default_out_indices) == (4, "FeatureListNet", (0, 1, 2, 3))
    assert ff.info[0] == (8, 2, "stem.2") and ff.intermediates and ff.prune and ff.alt_formats == ("NHWC",)
    assert ff.wrappers() == ("hook", "fx", "getter")
    getter = facts_for("toy_feat_getter_ok").features
    assert getter.default_cls == "FeatureGetterNet" and getter.wrappers() == ()
    assert facts_for("toy_feat_custom_ok").features.default_cls == "ToyFeatNetFeatures"


def test_discovery_records_a_failing_features_build_instead_of_dropping_the_model():
    """hrnet-like: a features_only build that fails on meta is recorded; the cases stay."""
    ff = facts_for("toy_feat_getter_missing_module").features
    assert ff is not None and ff.build_error == ""  # the getter never looks the module up
    assert features.out_indices_cases(ff) == ["default", "subset", "negative", "invalid"]


def test_index_cases():
    assert features.subset_indices(12) == (3, 6, 10)
    assert list({3, 6, 10}) != [3, 6, 10]  # the subset a set() reorders (the bug class of timm 1.0.7)
    assert features.subset_indices(4) == (1, 2) and features.subset_indices(3) == (0, 1)
    assert features.absolute(features.negative_indices(5), 5) == [2, 4]
    assert features.invalid_indices(5) == (0, 5)


OK_CASES = ([("out_indices", c) for c in features.OUT_INDICES_CASES]
            + [("intermediates", c) for c in (*features.INTERMEDIATES_CASES, "output_fmt_NHWC")]
            + [("wrapper", w) for w in ("hook", "fx", "getter")] + [("prune", None), ("pretrained", None)])


@pytest.mark.parametrize("check, case", OK_CASES)
def test_correct_toy_passes(check, case, workdir):
    run_check("toy_feat_ok", check, case, workdir)


@pytest.mark.parametrize("name", ["toy_feat_getter_ok", "toy_feat_custom_ok"])
def test_correct_getter_and_custom_toys_pass(name, workdir):
    for case in features.OUT_INDICES_CASES:
        run_check(name, "out_indices", case, workdir)
    for case in features.INTERMEDIATES_CASES:
        run_check(name, "intermediates", case, workdir)
    run_check(name, "pretrained", None, workdir)
    if name == "toy_feat_custom_ok":
        run_check(name, "script", None, workdir)


PLANTED = [
    ("toy_feat_reduction", "out_indices", "default",
     r"feature_info disagrees with the tensors returned \(3\):\n  output 1: feature_info.reduction\(\) says 2, "
     r"measured stride 4 \(\(64, 64\) input -> \(16, 16\) map\)"),
    ("toy_feat_channels", "out_indices", "default", r"output 2: feature_info.channels\(\) says 17, the tensor has 16"),
    ("toy_feat_getter_missing_module", "out_indices", "default",
     r"level 0: feature_info names module 'conv_stem', which the model does not have"),
    ("toy_feat_getter_wrong_module", "out_indices", "default",
     r"level 2: the tensor returned is not the output of module 'stages.1.0': max abs err"),
    ("toy_feat_getter_reversed", "out_indices", "default",
     r"output 0: feature_info.channels\(\) says 8, the tensor has 20"),
    ("toy_feat_getter_unchecked_indices", "out_indices", "invalid",
     r"out_indices=\(0, 4\) \(4 levels\) was accepted: it built and returned 1 tensor\(s\) for 2 indices"),
    ("toy_feat_getter_set_order", "out_indices", "subset",
     r"feature_info.out_indices is \(10, 3, 6\) \(levels \[10, 3, 6\]\), asked for levels \[3, 6, 10\]"),
    ("toy_feat_custom_negative", "out_indices", "negative",
     r"output 0 \(level 1\): shape \(2, 8, 32, 32\), that level of the all-levels features model has "
     r"\(2, 12, 16, 16\); it equals level 0"),
    ("toy_feat_final_no_norm", "intermediates", "all", r"final output differs from forward_features\(x\): max abs err"),
    ("toy_feat_norm_twice", "intermediates", "norm",
     r"forward_intermediates\(x, norm=True\): final output differs from forward_features\(x\)"),
    ("toy_feat_preact_taps", "intermediates", "all",
     r"intermediates \(3\):\n  output 1 \(level 1\) differs from that level of the features_only model: max abs err"),
    ("toy_feat_stop_early_norm", "intermediates", "stop_early",
     r"indices=\[1, 2\], norm=False, stop_early=True\) raised RuntimeError: running_mean should contain 16 elements"),
    ("toy_feat_stop_early_short", "intermediates", "stop_early",
     r"stop_early=True\): intermediates: 1 tensors returned for 2 levels \[1, 2\]"),
    ("toy_feat_nhwc_reshape", "intermediates", "output_fmt_NHWC",
     r"output_fmt='NHWC', intermediates_only=True\): intermediate 0 is not the NCHW map in NHWC layout"),
    ("toy_feat_pre_hook", "wrapper", "hook",
     r"feature_cls='hook' \(FeatureHookNet\), out_indices=\(0, 1, 2, 3\): outputs \(1\):\n  output 2 \(level 2\): "
     r"shape \(2, 12, 16, 16\), the default FeatureListNet's has \(2, 16, 8, 8\); it equals level 1"),
    ("toy_feat_preact_taps", "wrapper", "getter",
     r"(?s)feature_cls='getter' \(FeatureGetterNet\).*output 1 \(level 1\) differs from the default FeatureListNet's: "
     r"max abs err .* > budget 20 x"),
    ("toy_feat_prune_extra", "prune", None,
     r"after prune_intermediate_layers\(indices=\[1, 2\], .*\): intermediates: 1 tensors returned for 2 levels"),
    ("toy_feat_getter_set_order", "prune", None, r"returned \[10, 3, 6\], expected the indices to take \[3, 6, 10\]"),
    ("toy_feat_custom_rename", "pretrained", None,
     r"tensors not loaded from the checkpoint \(6\):\n  stages.0.0.0.weight: no such tensor in the checkpoint"),
    ("toy_feat_custom_unscriptable", "script", None,
     r"torch.jit.script of the features model \(ToyFeatNetFeatures\) raised RuntimeError: Module "
     r"'ToyFeatNetFeatures' has no attribute '_take'"),
]


@pytest.mark.parametrize("name, check, case, message", PLANTED, ids=[f"{p[0]}-{p[1]}-{p[2]}" for p in PLANTED])
def test_planted_bug_fails_with_what_differed(name, check, case, message, workdir):
    with pytest.raises(AssertionError, match=message):
        run_check(name, check, case, workdir)


META_PLANTED = [
    ("toy_feat_reduction", "out_indices", "default", r"feature_info.reduction\(\) says 2, measured stride 4"),
    ("toy_feat_getter_unchecked_indices", "out_indices", "invalid", r"was accepted"),
    ("toy_feat_getter_set_order", "out_indices", "subset", r"feature_info.out_indices is \(10, 3, 6\)"),
    ("toy_feat_stop_early_short", "intermediates", "stop_early", r"1 tensors returned for 2 levels"),
    ("toy_feat_getter_missing_module", "out_indices", "default", r"names module 'conv_stem'"),
]


@pytest.mark.parametrize("name, check, case, message", META_PLANTED, ids=[p[0] for p in META_PLANTED])
def test_structural_checks_on_meta_catch_shape_bugs(name, check, case, message, workdir):
    with pytest.raises(AssertionError, match=message):
        run_check(name, check, case, workdir, device="meta")


def test_structural_checks_pass_on_the_correct_toy_on_meta(workdir):
    for check, case in OK_CASES:
        run_check("toy_feat_ok", check, case, workdir, device="meta")


def test_suite_collects_the_declared_cases_with_model_first_ids(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_feature_models", "-m", "features",
                      "--models", "toy_feat_ok,toy_feat_getter_ok,toy_feat_stop_early_short"], tmp_path)
    ok = {t: o for t, o in run.outcomes.items() if "[toy_feat_ok" in t}
    assert ok == {t: "passed" for t in [
        *(f"test_features_out_indices[toy_feat_ok-out_indices_{c}]" for c in features.OUT_INDICES_CASES),
        *(f"test_forward_intermediates[toy_feat_ok-{c}]" for c in ("all", "norm", "stop_early", "output_fmt_NHWC")),
        *(f"test_feature_wrapper[toy_feat_ok-feature_cls_{w}]" for w in ("hook", "fx", "getter")),
        "test_prune_intermediate_layers[toy_feat_ok]", "test_features_pretrained[toy_feat_ok]",
        "test_features_script[toy_feat_ok]"]}, run.output
    assert run.failed() == {"test_forward_intermediates[toy_feat_stop_early_short-stop_early]"}, run.output
    assert not any("feature_cls" in t for t in run.outcomes if "getter_ok" in t)  # the getter is its default
    assert "1 tensors returned for 2 levels" in run.messages[
        "test_forward_intermediates[toy_feat_stop_early_short-stop_early]"]
