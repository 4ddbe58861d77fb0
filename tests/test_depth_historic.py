"""Historic regressions caught by the depth families, each on the real release that shipped
it and green on the release that fixed it (releases installed by harness.weights.releases):

- constructor kwargs, init value: timm 1.0.21's ``LayerScale.reset_parameters`` set gamma to
  ones whatever ``init_values`` said (PR #2605 "Fix LayerScale ignoring init_values"; commit
  78c3724f "Release 1.0.22 for LayerScale regression");
- constructor kwargs, token options: up to 1.0.25 ``VisionTransformer(pos_embed='none')``
  dropped the class and register tokens while ``num_prefix_tokens`` still counted them (PR
  #2676 "Fix CLS and Reg tokens usage when pos_embed is disabled", commit fa0d31e8, 1.0.26);
- layers: up to 1.0.12 ``RmsNorm`` / ``RmsNorm2d`` normalised by the centred variance, not the
  root mean square (issue #2380, commit 15406a93 "Fixing RmsNorm", 1.0.13);
- reset_classifier for every discovered pool: through 1.0.30 ``MobileNetV3.reset_classifier``
  defaulted ``global_pool='avg'`` (a model built with another pool was switched to avg by
  ``reset_classifier(N)``) and accepted ``catavgmax``, which doubles the width its conv_head
  was built for, leaving a model whose forward raises; 1.0.31 keeps the pool and refuses the
  width change (the limitation: issue #1561). Registered as a known issue for <1.0.31;
- entry-point kwargs: every release from 0.9.16 through 1.0.31 leaves the tf_* EfficientNet
  entry points' ``bn_eps`` in kwargs when a norm_layer is given, so passing back the norm_layer
  the entry point built raises TypeError (a known issue, not fixed); with the fix planted in a
  copy of timm (resolve_bn_args called whatever the norm_layer) the round trip passes;
- differential outputs: that fix changed what ``vit_base_patch16_xp_224`` (norm_layer=RmsNorm)
  computes between 1.0.12 and 1.0.13: "changed since timm 1.0.12" unless declared intended
  (registry.intended_changes); 1.0.14 against 1.0.13 is unchanged.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.weights.releases import timm_release
from tests.helpers import INSTALLED, ROOT, patched_timm, run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

VIT = "vit_tiny_patch16_224"
INIT = f"test_constructor_kwarg[{VIT}-kwarg-init_values_0.0123]"
TOKENS = (f"test_constructor_kwarg[{VIT}-kwarg-pos_embed_none]", f"test_constructor_kwarg[{VIT}-kwarg-pos_embed_]")
XP = "vit_base_patch16_xp_224"


def _create_run(version: str, tmp_path, keyword: str):
    return run_suites(["-m", "create", "--models", VIT, "-k", keyword], tmp_path, [timm_release(version)])


@pytest.mark.parametrize("version, outcome", [("1.0.21", "failed"), ("1.0.22", "passed")])
def test_layer_scale_init_values(version, outcome, tmp_path):
    run = _create_run(version, tmp_path, "kwarg-init_values")
    assert run.outcomes == {INIT: outcome}, run.output
    if outcome == "failed":
        assert "layer-scale parameters of the initialised model do not equal init_values=0.0123" in run.messages[INIT]
        assert "blocks.0.ls1.gamma: values in [1, 1]" in run.messages[INIT]


@pytest.mark.parametrize("version, outcome", [("1.0.25", "failed"), ("1.0.26", "passed")])
def test_pos_embed_none_keeps_the_prefix_tokens(version, outcome, tmp_path):
    run = _create_run(version, tmp_path, "kwarg-pos_embed or kwarg-class_token or kwarg-reg_tokens")
    assert {run.outcomes[t] for t in TOKENS} == {outcome}, run.output
    assert {t for t, o in run.outcomes.items() if o == "failed"} == (set(TOKENS) if outcome == "failed" else set())
    if outcome == "failed":
        assert ("forward_features returns 196 tokens, expected num_prefix_tokens (1) + 196 patches = 197"
                in run.messages[TOKENS[0]])


@pytest.mark.parametrize("version", ["1.0.12", "1.0.13"])
def test_rms_norm_against_torch(version, tmp_path):
    run = run_suites(["-m", "layers", "--models", "smoke", "-k", "RmsNorm or LayerNorm"], tmp_path,
                     [timm_release(version)])
    rms = {t for t in run.outcomes if "[RmsNorm" in t}
    assert rms and any("LayerNorm2d" in t for t in run.outcomes), run.output
    if version == "1.0.12":
        assert run.failed() == rms, run.output
        assert "RmsNorm-default differs from rms_norm (torch, float64)" in run.messages["test_layer[RmsNorm-default]"]
    else:
        assert run.failed() == set(), run.output


def _export(version: str, root) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(timm_release(version)), str(ROOT)])}
    subprocess.run([sys.executable, "-m", "harness", "export", str(root), "--outputs-only", "--models", XP],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=1800)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    roots = {}
    for version in ("1.0.12", "1.0.13"):
        roots[version] = tmp_path_factory.mktemp(f"ref-{version}")
        _export(version, roots[version])
    return roots


def test_rms_norm_fix_changed_outputs_since_1_0_12(references, tmp_path):
    args = ["-m", "compat", "--compat-dir", str(references["1.0.12"]), "--models", XP]
    test = f"test_compat_outputs[{XP}-1.0.12]"
    ignored = run_suites(args + ["--ignore-known-issues"], tmp_path / "ignored", [timm_release("1.0.13")])
    assert ignored.outcomes == {test: "failed"}, ignored.output
    message = ignored.messages[test]
    assert f"{XP} changed since timm 1.0.12: " in message and "logits: max abs err" in message
    declared = run_suites(args, tmp_path / "declared", [timm_release("1.0.13")])
    assert declared.outcomes == {test: "xfailed"}, declared.output


def test_no_change_between_1_0_13_and_1_0_14(references, tmp_path):
    run = run_suites(["-m", "compat", "--compat-dir", str(references["1.0.13"]), "--models", XP], tmp_path,
                     [timm_release("1.0.14")])
    assert run.outcomes == {f"test_compat_outputs[{XP}-1.0.13]": "passed"}, run.output


MNV3 = "mobilenetv3_small_050"


@pytest.mark.parametrize("version", ["1.0.30", "1.0.31"])
def test_mobilenetv3_reset_keeps_the_pool_and_refuses_a_width_change(version, tmp_path):
    args = ["-m", "reset_classifier", "--models", MNV3, "-k", "default or global_pool_max or global_pool_catavgmax"]
    run = run_suites(args + ["--ignore-known-issues"], tmp_path / "ignored", [timm_release(version)])
    tests = {f"test_reset_classifier[{MNV3}-{c}]" for c in ("default", "global_pool_max", "global_pool_catavgmax",
                                                           "num_classes_0-global_pool_max",
                                                           "num_classes_0-global_pool_catavgmax")}
    assert set(run.outcomes) == tests, run.output
    if version == "1.0.31":
        assert set(run.outcomes.values()) == {"passed"}, run.output
        return
    assert run.failed() == tests, run.output
    assert ("after reset_classifier(1005, 'catavgmax'): the forward raised RuntimeError: Given groups=1, weight of "
            "size [1024, 288, 1, 1]") in run.messages[f"test_reset_classifier[{MNV3}-default]"]
    assert ("after reset_classifier(0): pooling configuration changed" in
            run.messages[f"test_reset_classifier[{MNV3}-global_pool_max]"])
    declared = run_suites(args, tmp_path / "declared", [timm_release(version)])
    assert set(declared.outcomes.values()) == {"xfailed"}, declared.output


MIXNET = "tf_mixnet_s"
ENTRY = f"test_entry_kwargs[{MIXNET}-entry_kwargs]"
BN_EPS = "raised TypeError: EfficientNet.__init__() got an unexpected keyword argument 'bn_eps'"
_NORM_LAYER = "norm_layer=kwargs.pop('norm_layer', None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs)),"
_NORM_LAYER_FIXED = ("norm_layer=(lambda bn_args: kwargs.pop('norm_layer', None) or "
                     "partial(nn.BatchNorm2d, **bn_args))(resolve_bn_args(kwargs)),")


@pytest.mark.parametrize("version", ["0.9.16", INSTALLED])
def test_tf_bn_eps_left_in_kwargs_with_a_norm_layer(version, tmp_path):
    args = ["-m", "create", "--models", MIXNET, "-k", "entry_kwargs"]
    path = [] if version == INSTALLED else [timm_release(version)]
    ignored = run_suites(args + ["--ignore-known-issues"], tmp_path / "ignored", path)
    assert ignored.outcomes == {ENTRY: "failed"}, ignored.output
    assert BN_EPS in ignored.messages[ENTRY] and "norm_layer=functools.partial(" in ignored.messages[ENTRY]
    assert run_suites(args, tmp_path / "declared", path).outcomes == {ENTRY: "xfailed"}


def test_tf_bn_eps_fixed_passes_and_the_stale_entry_fails(tmp_path):
    fixed = patched_timm(tmp_path, "models/efficientnet.py", _NORM_LAYER, _NORM_LAYER_FIXED)
    args = ["-m", "create", "--models", MIXNET, "-k", "entry_kwargs"]
    assert run_suites(args + ["--ignore-known-issues"], tmp_path / "ignored", [fixed]).outcomes == {ENTRY: "passed"}
    declared = run_suites(args, tmp_path / "declared", [fixed])  # strict: a known issue that passes fails
    assert declared.outcomes == {ENTRY: "failed"}, declared.output
