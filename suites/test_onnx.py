"""onnx: the TorchScript-based and the dynamo exporter each produce a file that passes
onnx.checker and, with a dynamic batch axis, runs in onnxruntime (CPU) with the eager
outputs at batch sizes other than the export batch; reparameterizable models also after
reparameterize_model. Ids: '<model>-<exporter>' and '<model>-<exporter>-reparam'.
Models over --max-params are skipped: an export needs real weights. The check always
runs on the CPU (onnxruntime's CPU provider), whatever --device says."""
import pytest

from harness.checks.onnx import check_onnx

pytestmark = [pytest.mark.onnx, pytest.mark.cases("onnx")]


def test_onnx_export(model_case, exporter, reparameterized, device, tmp_path):
    if device == "meta":
        pytest.skip(f"over --max-params ({model_case.facts.param_count:,} parameters): "
                    f"ONNX export needs real weights")
    check_onnx(model_case.model, model_case.facts.input_size, exporter, tmp_path, reparameterize=reparameterized)
