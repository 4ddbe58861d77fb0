"""timm_utils: timm's own utilities as its scripts call them (harness/checks/timm_utils.py).

- test_timm_onnx_export[<model>-<exporter>[-reparam]]: timm.utils.onnx.onnx_export as
  onnx_export.py calls it (TorchScript and dynamo exporters; --reparam for
  reparameterizable models), then timm's onnx_forward against eager at other batches.
- test_train_checkpoint[<model>-candidate | <model>-<baseline>]: a CheckpointSaver file
  (model, optimizer, EMA, args, epoch) written by the candidate, or by a baseline release
  (--compat-dir), resumes with resume_checkpoint and loads with load_checkpoint.
Models over --max-params are skipped: both need real weights."""
import pytest

from harness.checks.timm_utils import (
    UtilsSkip,
    check_timm_onnx,
    check_train_checkpoint,
    check_train_checkpoint_artifact,
)


def _numeric(model_case, device, what: str) -> None:
    if device == "meta":
        pytest.skip(f"over --max-params ({model_case.facts.param_count:,} parameters): {what} needs real weights")


@pytest.mark.timm_utils
@pytest.mark.cases("onnx")
def test_timm_onnx_export(model_case, exporter, reparameterized, device, tmp_path):
    _numeric(model_case, device, "ONNX export")
    try:
        check_timm_onnx(model_case.model, model_case.facts.input_size, exporter, tmp_path, reparameterized)
    except UtilsSkip as exc:
        pytest.skip(str(exc))


@pytest.mark.timm_utils
@pytest.mark.cases("train_checkpoint")
def test_train_checkpoint(model_case, compat_artifact, device, tmp_path):
    _numeric(model_case, device, "a training checkpoint")
    try:
        if compat_artifact is None:
            check_train_checkpoint(model_case.model, model_case.facts.input_size, tmp_path)
        else:
            check_train_checkpoint_artifact(compat_artifact)
    except UtilsSkip as exc:
        pytest.skip(str(exc))
