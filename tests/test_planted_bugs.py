"""Every assertion of the create, pretrained and reset_classifier checks fails on a toy
model that plants the bug it exists for, and passes on the correct toy (so the checks
can both pass and fail). The toys are registered by tests/toys/toy_models.py only."""
from __future__ import annotations

import pytest
import torch

from harness.checks.pretrained import check_variant, make_source
from harness.checks.reset_classifier import check_reset_classifier, fresh_copy, make_subject
from harness.models.variants import LOAD_MODES, head_variants
from harness.registry.model_families import family_for
from tests.toys import toy_models

SIZE = (3, 32, 32)
MODES = {m.id: m for m in LOAD_MODES}
FAMILY = toy_models.TOY_FAMILY
VARIANTS = {v.id: v for v in head_variants(FAMILY)}


def run_cell(name: str, mode: str, variant: str, tmp_path):
    source = make_source(name, "cpu", tmp_path, SIZE) if MODES[mode].pretrained else None
    return check_variant(name, "cpu", SIZE, MODES[mode], VARIANTS[variant], source, FAMILY.loads_pretrained)


def run_reset(name: str, **config) -> list[str]:
    return check_reset_classifier(make_subject(name, "cpu", SIZE, config), FAMILY, max_examples=4)


def test_toy_family_is_found_by_module():
    assert family_for("toy_ok", toy_models.__name__) == FAMILY
    assert set(VARIANTS) == {"default", "num_classes_0", "num_classes_7", "global_pool_", "head_"}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_correct_toy_passes_every_cell(mode, variant, tmp_path):
    out = run_cell("toy_ok", mode, variant, tmp_path)
    expected = {"default": (2, 1000), "num_classes_7": (2, 7), "num_classes_0": (2, 16), "head_": (2, 1000),
                "global_pool_": (2, 16, 16, 16)}[variant]
    assert tuple(out.shape) == expected and torch.isfinite(out).all()


@pytest.mark.parametrize("config", [{}, {"global_pool": "map"}, {"global_pool": "max"}])
def test_correct_toy_passes_reset(config):
    done = run_reset("toy_ok", **config)
    pool = config.get("global_pool", "avg")
    assert done[:4] == ["reset_classifier(0)", "reset_classifier(1003)",
                        f"reset_classifier(0, {pool!r}) then reset_classifier(1000, {pool!r})",
                        "reset_classifier(0) then reset_classifier(1000)"]
    assert len(done) >= 6 and done[-1] == "reset_classifier(0, '')"  # hypothesis' (N, pool) cases, then unpooled


@pytest.mark.parametrize("name, mode, variant, message", [
    ("toy_strict_head", "pretrained", "head_", r"Unexpected key\(s\) in state_dict: .*head_extra"),
    ("toy_filter_drops_key", "pretrained", "default", r"stage.weight: value differs from the checkpoint"),
    ("toy_filter_scales", "pretrained", "default", r"stem.weight: value differs from the checkpoint, max abs err"),
    ("toy_filter_scales", "pretrained_nonstrict", "num_classes_7", r"stem.weight: value differs"),
    ("toy_nan_output", "scratch", "default", r"values are not finite"),
    ("toy_pooled_unpooled", "scratch", "global_pool_", r"is pooled; num_classes=0, global_pool=''"),
    ("toy_wrong_features", "pretrained", "num_classes_0", r"expected \(B, num_features\)"),
    ("toy_ignores_num_classes", "scratch", "num_classes_7", r"model.num_classes is 1000, expected 7"),
])
def test_create_and_pretrained_catch_planted_bug(name, mode, variant, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        run_cell(name, mode, variant, tmp_path)


@pytest.mark.parametrize("name, config, message", [
    ("toy_drop_attn_pool", {"global_pool": "map"},
     r"after reset_classifier\(0, 'map'\): pooling configuration changed:\n  attn_pool: AttnPool -> None"),
    ("toy_pool_reset_to_avg", {"global_pool": "max"}, r"global_pool: 'max' -> 'avg'"),
    ("toy_reinit_prelogits", {}, r"pre-logits features differs: max abs err"),
    ("toy_stale_num_classes", {}, r"model.num_classes is 1000, expected 0"),
    ("toy_keep_classifier", {}, r"output shape \(2, 1000\), expected \(B, num_features\)"),
])
def test_reset_classifier_catches_planted_bug(name, config, message):
    with pytest.raises(AssertionError, match=message):
        run_reset(name, **config)


def test_reset_steps_reuse_the_model_restored_and_prove_it_harmless():
    """The steps run on the configured model itself, put back before each (fresh_copy): the
    head a reset replaced is the original again. A correct model is checked that way alone,
    with no note, and ends as it started."""
    subject = make_subject("toy_ok", "cpu", SIZE, {})
    head, classes = subject.model.head, subject.model.num_classes
    before = {k: v.clone() for k, v in subject.model.state_dict().items()}
    model = fresh_copy(subject)
    model.reset_classifier(7)
    assert model.head is not head and model.num_classes == 7
    assert fresh_copy(subject) is subject.model and subject.model.head is head and subject.model.num_classes == classes
    check_reset_classifier(subject, FAMILY, max_examples=2)
    assert subject.in_place and not subject.notes and subject.model.head is head
    assert all(torch.equal(v, before[k]) for k, v in subject.model.state_dict().items())


def test_state_restoring_cannot_undo_is_named():
    """A plain value mutated below the first level (a dict inside a list) survives the
    restore of the attributes: the snapshot names the module, and the check would rerun."""
    from harness.models.module_state import ModuleSnapshot
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.info = [{"num_chs": 2}]
    model[0].name = "fc"
    snapshot = ModuleSnapshot(model)
    model.info.append({"num_chs": 3})  # first level: restored
    model[0].name, model[0].extra = "other", 1
    assert snapshot.not_restored() == [] and model.info == [{"num_chs": 2}] and model[0].name == "fc"
    model.info[0]["num_chs"] = 5  # below the first level: not
    assert snapshot.not_restored() == ["attributes of the model"]


def test_a_reset_that_writes_in_place_is_checked_again_on_deep_copies():
    """A reset that writes the old head's bias in place (harmless on a deep copy) leaks into
    the reused model: the check notices, and the deep-copy run of the model as it was
    decides, passing, with a note naming the tensor."""
    subject = make_subject("toy_zeroes_old_head", "cpu", SIZE, {})
    bias = subject.model.head.bias.clone()
    done = check_reset_classifier(subject, FAMILY, max_examples=2)
    assert done == check_reset_classifier(make_subject("toy_ok", "cpu", SIZE, {}), FAMILY, max_examples=2)
    assert not subject.in_place and torch.equal(subject.model.head.bias, bias)
    assert any("wrote into the model in place (head.bias)" in n for n in subject.notes), subject.notes


def test_written_tensors_include_non_persistent_buffers_and_nan():
    """The steps write non-persistent buffers too, so the proof looks at them; NaN where
    NaN was is not a write."""
    import copy as copy_module

    from harness.checks.reset_classifier import _tensors_written
    model = torch.nn.Linear(2, 2)
    model.register_buffer("scale", torch.tensor([1.0, float("nan")]), persistent=False)
    pristine = copy_module.deepcopy(model)
    assert _tensors_written(model, pristine) == []
    with torch.no_grad():
        model.scale[0] = 2.0
    assert _tensors_written(model, pristine) == ["scale"]
    model.weight.requires_grad_(False)
    assert _tensors_written(model, pristine) == ["scale", "weight"]


def test_a_reset_that_writes_the_backbone_fails_as_on_deep_copies():
    """Writing a backbone weight is caught the same way with shared copies as with deep
    ones: the first step's model(x) no longer matches the head on the features."""
    message = r"forward_head\(forward_features\(x\)\) vs model\(x\)"
    with pytest.raises(AssertionError, match=message):
        run_reset("toy_writes_body")
    deep = make_subject("toy_writes_body", "cpu", SIZE, {})
    deep.in_place = False
    with pytest.raises(AssertionError, match=message):
        check_reset_classifier(deep, FAMILY, max_examples=2)


def test_structural_checks_on_meta_catch_strict_head_bug():
    """Over --max-params the same load runs on the meta device (keys and shapes only)."""
    source = make_source("toy_strict_head", "meta", None, SIZE)
    with pytest.raises(AssertionError, match=r"Unexpected key\(s\)"):
        check_variant("toy_strict_head", "meta", SIZE, MODES["pretrained"], VARIANTS["head_"], source,
                      FAMILY.loads_pretrained)
    check_variant("toy_ok", "meta", SIZE, MODES["pretrained"], VARIANTS["head_"],
                  make_source("toy_ok", "meta", None, SIZE), FAMILY.loads_pretrained)


def test_structural_reset_on_meta_catches_dropped_attention_pool():
    subject = make_subject("toy_drop_attn_pool", "meta", SIZE, {"global_pool": "map"})
    with pytest.raises(AssertionError, match="attn_pool: AttnPool -> None"):
        check_reset_classifier(subject, FAMILY, max_examples=2)
