"""The timm_utils family. ONNX helper: a correct toy passes both exporters; a forward that
changes under export, an export-only layer and a baked batch size fail, named. Training
checkpoints: the candidate's own CheckpointSaver file resumes; a load hook that alters a
tensor fails naming it; planted edits of a temp copy of timm's loader (no safe globals
for train.py's argparse.Namespace: the torch 2.6 weights_only class of break; use_ema
ignored) fail; a baseline's exported checkpoint is checked from --compat-dir, and an
artifact without one, or tampered, fails with the reason. Toys:
tests/toys/toy_utils_models.py, tests/toys/toy_onnx_models.py."""
from __future__ import annotations

import json
import re

import pytest

from harness.checks import timm_utils
from harness.models import build
from harness.weights import artifacts, training_checkpoints
from tests.helpers import patched_timm, run_suites
from tests.test_compat import _export_as, _flip_byte
from tests.toys import toy_onnx_models, toy_utils_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)
PLUGINS = ["-p", "tests.toys.toy_utils_models", "-m", "timm_utils"]


@pytest.mark.parametrize("exporter", timm_utils.EXPORTERS)
def test_onnx_helper_passes_on_the_correct_toy(exporter, tmp_path):
    timm_utils.check_timm_onnx("toy_utils_ok", SIZE, exporter, tmp_path)
    assert not list(tmp_path.glob("*.onnx*"))  # the export is removed after a pass


@pytest.mark.parametrize("exporter", timm_utils.EXPORTERS)
@pytest.mark.parametrize("bug", ["export_path", "exportable_layer"])
def test_onnx_helper_catches_what_the_file_computes_differently(bug, exporter, tmp_path):
    dynamo = exporter == "dynamo"
    with pytest.raises(AssertionError, match=rf"^timm.utils.onnx.onnx_export\(use_dynamo={dynamo}\): onnx_forward at "
                                             r"batch 1 differs from the eager model \(built without exportable=True\): "
                                             r"max abs err"):
        timm_utils.check_timm_onnx(f"toy_utils_{bug}", SIZE, exporter, tmp_path)


def test_onnx_helper_catches_a_baked_batch(tmp_path):
    with pytest.raises(AssertionError, match=r"onnx_export\(use_dynamo=False\): onnx_forward at batch 3: "
                                             r"shape \(1, 1000\), the eager model .* \(3, 1000\)"):
        timm_utils.check_timm_onnx("toy_onnx_baked_batch", SIZE, "torchscript", tmp_path)


def test_train_checkpoint_resumes_and_a_load_hook_that_alters_weights_fails(tmp_path):
    timm_utils.check_train_checkpoint("toy_utils_ok", SIZE, tmp_path / "ok")
    with pytest.raises(AssertionError, match=r"^resume_checkpoint\(model, train_checkpoint.pth.tar written by timm "
                                             r"[\d.]+, optimizer=...\): the model: tensors unlike the saved ones \(1\):"
                                             r"\n  stem.weight: differs from the saved tensor"):
        timm_utils.check_train_checkpoint("toy_utils_load_hook", SIZE, tmp_path / "hook")


def test_checkpoint_holds_what_train_py_saves(tmp_path):
    import torch

    checkpoint, expected = training_checkpoints.write_training_checkpoint("toy_utils_ok", tmp_path, SIZE)
    saved = torch.load(checkpoint, weights_only=False)  # written by this test
    assert {"epoch", "arch", "state_dict", "optimizer", "version", "args", "state_dict_ema", "metric"} <= set(saved)
    assert saved["epoch"] == training_checkpoints.EPOCH and saved["args"].model == "toy_utils_ok"
    groups = training_checkpoints.load_expected(expected)
    assert not torch.equal(groups["model"]["stem.weight"], groups["ema"]["stem.weight"])  # EMA is not the model
    assert set(groups["momentum"]) == {n for n, _ in torch.nn.Module.named_parameters(
        toy_utils_models.ToyCkptNet())}


@pytest.mark.parametrize("old, new, message", [
    ("            with torch.serialization.safe_globals([argparse.Namespace]):\n"
     "                return torch.load(checkpoint_path, **load_kwargs)",
     "            return torch.load(checkpoint_path, **load_kwargs)",
     r"resume_checkpoint\(model, train_checkpoint.pth.tar written by timm [\d.]+, optimizer=...\) raised "
     r"UnpicklingError: .*argparse.Namespace was not an allowed global"),
    ("                state_dict_key = 'state_dict_ema'\n", "                state_dict_key = 'state_dict'\n",
     r"load_checkpoint\(model_ema.module, train_checkpoint.pth.tar written by timm [\d.]+, use_ema=True\): "
     r"tensors unlike the saved ones"),
], ids=["no_safe_globals", "ignores_use_ema"])
def test_planted_edits_of_timms_loader_fail(old, new, message, tmp_path):
    timm_copy = patched_timm(tmp_path, "models/_helpers.py", old, new)
    run = run_suites(PLUGINS + ["--models", "toy_utils_ok", "-k", "train_checkpoint"], tmp_path, [timm_copy])
    test = "test_train_checkpoint[toy_utils_ok-candidate]"
    assert run.outcomes == {test: "failed"}, run.output
    assert re.search(message, run.messages[test]), run.messages[test]


def test_baseline_checkpoints_from_the_compat_dir(tmp_path):
    root = tmp_path / "compat"
    good = _export_as(root, "0.0.1")
    assert artifacts.verify(good).train_checkpoint["error"] == ""
    old = _export_as(root, "0.0.2")
    manifest = json.loads((old / artifacts.MANIFEST).read_text())
    del manifest["train_checkpoint"]
    (old / artifacts.MANIFEST).write_text(json.dumps(manifest))
    _flip_byte(_export_as(root, "0.0.3") / training_checkpoints.CHECKPOINT)
    _export_as(root, build.timm_version())  # the candidate's own artifacts: not compared
    run = run_suites(["-p", "tests.toys.toy_models", "-m", "timm_utils", "-k", "train_checkpoint", "--models", "toy_ok",
                      "--compat-dir", str(root)], tmp_path)
    assert run.outcomes == {"test_train_checkpoint[toy_ok-candidate]": "passed",
                            "test_train_checkpoint[toy_ok-0.0.1]": "passed",
                            "test_train_checkpoint[toy_ok-0.0.2]": "failed",
                            "test_train_checkpoint[toy_ok-0.0.3]": "failed"}, run.output
    assert "holds no training checkpoint (written by an older harness)" in run.messages[
        "test_train_checkpoint[toy_ok-0.0.2]"]
    assert "train_checkpoint.pth.tar: sha256" in run.messages["test_train_checkpoint[toy_ok-0.0.3]"]
