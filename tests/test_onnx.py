"""The onnx check: both exporters pass on a correct toy, each fails on a toy whose forward
bakes the batch size into the graph (naming the module), the after-reparam export fails
naming the layer reparameterize left None, failure parsing finds the op an exporter names,
and the suite collects '<model>-<exporter>[-reparam]' ids. Toys: tests/toys/toy_onnx_models.py,
tests/toys/toy_reparam_models.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.checks import onnx as onnx_export
from harness.checks.onnx import check_onnx
from tests.helpers import run_suites
from tests.toys import toy_onnx_models, toy_reparam_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)


@pytest.mark.parametrize("exporter", onnx_export.EXPORTERS)
def test_correct_toy_passes(exporter, tmp_path):
    result = check_onnx("toy_onnx_ok", SIZE, exporter, tmp_path)
    assert set(result.errors) == set(onnx_export.RUN_BATCHES)
    assert all(err <= budget for err, budget in result.errors.values())
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # exports (and .data files) removed after a pass


@pytest.mark.parametrize("exporter, message", [
    ("torchscript", r"^torchscript export: output output_0 at batch 1 \(exported at batch 2\) has shape \(2, 1000\) "
                    r"in onnxruntime, eager \(1, 1000\); first failing module \(exported alone\): head "),
    ("dynamo", r"^dynamo export: the batch axis is not dynamic in the ONNX graph: input_0: dim 0 = 2 .*"
               r"first failing module \(exported alone\): head \(onnxruntime fails"),
])
def test_baked_batch_size_is_caught(exporter, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        check_onnx("toy_onnx_baked_batch", SIZE, exporter, tmp_path)


@pytest.mark.parametrize("exporter", onnx_export.EXPORTERS)
def test_after_reparam_export_names_the_layer_left_none(exporter, tmp_path):
    check_onnx("toy_reparam_none_layer", SIZE, exporter, tmp_path)  # fine before reparameterizing
    with pytest.raises(AssertionError, match=rf"^{exporter} export after reparameterize_model failed in module "
                                             r"pre_norm: TypeError: 'NoneType' object is not callable; "
                                             r"reparameterize left None where modules were: pre_norm.norm "
                                             r"\(was BatchNorm2d\)"):
        check_onnx("toy_reparam_none_layer", SIZE, exporter, tmp_path, reparameterize=True)


@pytest.mark.parametrize("exporter", onnx_export.EXPORTERS)
def test_a_graph_that_computes_differently_fails_parity(exporter, tmp_path):
    """toy_onnx_export_differs: the exported graph is 1% off eager, shapes and batch axis fine."""
    with pytest.raises(AssertionError, match=rf"^{exporter} export: output output_0 at batch 1 differs between "
                                             r"onnxruntime and eager: max abs err .*; budget 20 x "):
        check_onnx("toy_onnx_export_differs", SIZE, exporter, tmp_path)


def test_a_file_the_checker_rejects_fails(tmp_path, monkeypatch):
    """An exporter that writes an invalid graph (a node reading an undefined value)."""
    import onnx

    real_export = onnx_export.export

    def broken_export(model, args, path, exporter):
        names = real_export(model, args, path, exporter)
        graph = onnx.load(str(path))
        graph.graph.node[0].input[0] = "undefined_value"
        onnx.save(graph, str(path))
        return names

    monkeypatch.setattr(onnx_export, "export", broken_export)
    with pytest.raises(AssertionError, match=r"^torchscript export: onnx.checker rejects the file: .*undefined_value"):
        check_onnx("toy_onnx_ok", SIZE, "torchscript", tmp_path)


def test_correct_reparam_toy_exports_after_reparam(tmp_path):
    result = check_onnx("toy_reparam_ok", SIZE, "torchscript", tmp_path, reparameterize=True)
    assert set(result.errors) == set(onnx_export.RUN_BATCHES)
    assert all(0 <= err <= budget for err, budget in result.errors.values())


def test_failing_op_reads_the_exporters_messages():
    ts = RuntimeError("Exporting the operator 'aten::fft_rfft2' to ONNX opset version 18 is not supported.")
    assert onnx_export.failing_op(ts) == "aten::fft_rfft2"
    try:
        try:
            raise ValueError("Error when translating node %x : call_function[target=torch.ops.aten.roll.default]")
        except ValueError as inner:
            raise RuntimeError("Failed to convert the exported program to an ONNX model.") from inner
    except RuntimeError as outer:
        assert onnx_export.failing_op(outer) == "aten.roll.default"
        assert onnx_export._first_line(outer).startswith("ValueError: Error when translating node")
    assert onnx_export.failing_op(RuntimeError("no op here")) is None


def test_bisection_finds_the_first_failing_module_and_stays_bounded():
    class Leaf(nn.Module):
        def forward(self, x):
            return x + 1

    model = nn.Sequential(nn.Sequential(Leaf(), Leaf()), nn.Sequential(Leaf(), nn.Sequential(Leaf(), Leaf())))
    bad = model[1][1][0]
    batches = {2: (torch.zeros(2, 3),), 1: (torch.zeros(1, 3),)}
    seen = []

    def probe(module, inputs):
        seen.append(module)
        bad_inside = any(m is bad for m in module.modules())
        return "fails" if bad_inside else None

    assert onnx_export.locate_failing_module(model, batches, probe) == ("1.1.0", "fails")
    assert len(seen) == 5  # 0, 1 | 1.0, 1.1 | 1.1.0
    seen.clear()
    assert onnx_export.locate_failing_module(model, batches, probe, max_probes=2) == ("1", "fails")


def test_suite_ids_and_skips_over_max_params(tmp_path):
    """'<model>-<exporter>' for every model, '-reparam' ids only for reparameterizable ones;
    over --max-params skipped with a reason (toy_reparam_* has 10,008 parameters)."""
    run = run_suites(["-p", "tests.toys.toy_onnx_models", "-p", "tests.toys.toy_reparam_models", "-m", "onnx",
                      "--models", "toy_onnx_ok,toy_onnx_baked_batch,toy_reparam_ok", "--max-params", "10000"],
                     tmp_path)
    expected = {"test_onnx_export[toy_onnx_ok-torchscript]": "passed",
                "test_onnx_export[toy_onnx_ok-dynamo]": "passed",
                "test_onnx_export[toy_onnx_baked_batch-torchscript]": "failed",
                "test_onnx_export[toy_onnx_baked_batch-dynamo]": "failed",
                **{f"test_onnx_export[toy_reparam_ok-{e}{r}]": "skipped"
                   for e in onnx_export.EXPORTERS for r in ("", "-reparam")}}
    assert run.outcomes == expected, run.output
    assert "ONNX export needs real weights" in run.messages["test_onnx_export[toy_reparam_ok-dynamo-reparam]"]


def test_calibration_floors_the_variances_a_two_sample_batch_leaves_near_zero(tmp_path):
    """rexnet_130's SE blocks hold a BN on pooled 1x1 features: calibrated on the 2-image batch
    some channels got ~1e-6 of their layer's variance, its float32 error grew to 4% of its logits
    and the zoo failed its onnx and timm_utils exports (ORT and eager both far from float64).
    With the floor the error is small and the export check passes."""
    from harness.checks.numerics import CALIBRATION_VAR_FLOOR, calibrate_batchnorm, float64_copy
    from harness.models import build
    from harness.weights.deterministic import fill_deterministic, make_input

    name, size = "rexnet_130", (3, 128, 128)
    errors = {}
    for floor in (0.0, CALIBRATION_VAR_FLOOR):
        model = fill_deterministic(build.create(name, device="cpu"), name)
        assert calibrate_batchnorm(model, make_input(name, size, 2), var_floor=floor)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if floor:
            assert all((m.running_var >= floor / (1 + floor) * m.running_var.mean()).all() for m in bns)
        x = make_input(name, size, 1)
        with torch.no_grad():
            ref = float64_copy(model)(x.double())
            errors[floor] = (model(x).double() - ref).abs().max().item() / ref.abs().max().item()
    assert errors[0.0] > 1e-2 > 1e-3 > errors[CALIBRATION_VAR_FLOOR], errors
    check_onnx(name, size, "torchscript", tmp_path)
