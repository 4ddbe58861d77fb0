"""The timm_utils family on the real releases (torch 2.14 under every one of them):

- ONNX helper, TorchScript exporter: torch removed the private ``torch.onnx._export`` that
  ``timm.utils.onnx.onnx_export`` called, so timm <= 1.0.15 raises AttributeError (timm #2472,
  fixed in 1.0.16 by calling ``torch.onnx.export``).
- ONNX helper, dynamo exporter: torch 2.9 removed ``torch.onnx.dynamo_export`` /
  ``ExportOptions``; timm <= 1.0.30 still used them for ``use_dynamo=True`` (fixed in 1.0.31
  with ``torch.onnx.export(dynamo=True, dynamic_shapes=...)``).
- ONNX helper on ConViT: 1.0.31 made GPSA.rel_indices a buffer, and onnx_export's warm-up
  forward under inference_mode (since 1.0.17) leaves an inference tensor in it, so the TorchScript
  export raises 'Inference tensors cannot be saved for backward' (found by the zoo; 1.0.30 exports).
- Training checkpoints: torch 2.6 made ``torch.load(weights_only=True)`` the default; timm
  <= 1.0.8 called ``torch.load`` without it in resume_checkpoint / load_checkpoint, so the
  ``argparse.Namespace`` train.py stores in every checkpoint is refused (UnpicklingError),
  for the release's own checkpoints and for those 0.9.16 wrote (timm #2249, fixed in 1.0.9).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.weights.releases import timm_release
from tests.helpers import ROOT, run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

MODEL = "resnet18"
INSTALLED = "installed"  # the timm importable in the test environment (the newest release)


@pytest.fixture(scope="module")
def compat_dir(tmp_path_factory):
    """resnet18's artifacts, training checkpoint included, written by the real export on 0.9.16."""
    out = tmp_path_factory.mktemp("utils-artifacts")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(timm_release("0.9.16")), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-m", "harness", "export", str(out), "--models", MODEL],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _run(version: str, args: list[str], tmp_path_factory):
    path = [] if version == INSTALLED else [timm_release(version)]
    return run_suites(["-m", "timm_utils", "--models", MODEL, *args], tmp_path_factory.mktemp(f"utils-{version}"), path)


@pytest.mark.parametrize("version, outcome", [("1.0.15", "failed"), ("1.0.16", "passed")])
def test_onnx_helper_torchscript_breaks_until_1_0_16(version, outcome, tmp_path_factory):
    run = _run(version, ["-k", "torchscript"], tmp_path_factory)
    test = f"test_timm_onnx_export[{MODEL}-torchscript]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert ("timm.utils.onnx.onnx_export(use_dynamo=False) raised: AttributeError: module 'torch.onnx' has no "
                "attribute '_export'") in run.messages[test]


@pytest.mark.parametrize("version, outcome", [("1.0.30", "failed"), (INSTALLED, "passed")])
def test_onnx_helper_dynamo_breaks_until_1_0_31(version, outcome, tmp_path_factory):
    run = _run(version, ["-k", "dynamo"], tmp_path_factory)
    test = f"test_timm_onnx_export[{MODEL}-dynamo]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert ("timm.utils.onnx.onnx_export(use_dynamo=True) raised: AttributeError: module 'torch.onnx' has no "
                "attribute 'ExportOptions'") in run.messages[test]


@pytest.mark.parametrize("version, outcome", [("1.0.8", "failed"), ("1.0.9", "passed"), (INSTALLED, "passed")])
def test_training_checkpoints_need_weights_only_handling_from_1_0_9(version, outcome, compat_dir, tmp_path_factory):
    run = _run(version, ["-k", "train_checkpoint", "--compat-dir", str(compat_dir)], tmp_path_factory)
    own, baseline = f"test_train_checkpoint[{MODEL}-candidate]", f"test_train_checkpoint[{MODEL}-0.9.16]"
    assert run.outcomes == {own: outcome, baseline: outcome}, run.output
    for test, writer in ((own, version), (baseline, "0.9.16")):
        if outcome == "failed":
            assert (f"resume_checkpoint(model, train_checkpoint.pth.tar written by timm {writer}, optimizer=...) "
                    f"raised UnpicklingError") in run.messages[test]
            assert "argparse.Namespace was not an allowed global" in run.messages[test]


@pytest.mark.parametrize("version, outcome, message", [
    ("1.0.30", "failed", "timm.utils.onnx.onnx_export(use_dynamo=False): timm's onnx_forward at batch 3 (exported at "
                         "batch 1) raised Fail: [ONNXRuntimeError]"),
    (INSTALLED, "xfailed", "timm.utils.onnx.onnx_export(use_dynamo=False) raised in module blocks.0.attn.pos_proj: "
                           "RuntimeError: Inference tensors cannot be saved for backward"),
])
def test_onnx_helper_on_convit_fails_one_way_on_1_0_30_and_another_on_1_0_31(version, outcome, message,
                                                                            tmp_path_factory):
    """1.0.30's plain rel_indices attribute is traced as a constant of the export's batch (1), so the
    graph fails at batch 3; 1.0.31's buffer makes the batch dynamic for torch.onnx.export (the onnx
    family passes) but onnx_export's inference_mode warm-up now breaks the helper (a known issue)."""
    path = [] if version == INSTALLED else [timm_release(version)]
    args = ["-m", "timm_utils", "--models", "convit_tiny", "-k", "onnx_export and torchscript"]
    run = run_suites(args, tmp_path_factory.mktemp(f"convit-{version}"), path)
    test = "test_timm_onnx_export[convit_tiny-torchscript]"
    assert run.outcomes == {test: outcome}, run.output
    bare = run if outcome == "failed" else run_suites(args + ["--ignore-known-issues"],
                                                      tmp_path_factory.mktemp("convit-bare"), path)
    assert bare.outcomes == {test: "failed"}, bare.output
    assert message in bare.messages[test]
