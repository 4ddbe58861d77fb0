"""The timm_utils check family: timm's own utilities, called as timm's scripts call them.

**ONNX export helper** (``timm.utils.onnx``), as ``onnx_export.py`` runs it: the model from
``create_model(name, pretrained=True, exportable=True)`` (the weights a file the harness
wrote, BN statistics calibrated as in the onnx check), ``reparameterize_model`` for
``--reparam``, then ``onnx_export(model, file, opset=None, dynamic_size=False,
aten_fallback=False, keep_initializers=False, check_forward=False, training=False,
verbose=False, use_dynamo=..., input_size=..., batch_size=1)`` with each exporter timm
offers (``use_dynamo`` False: TorchScript, True: dynamo). Then timm's validation path,
``onnx_forward(file, x)``, at batches other than the export batch must give the outputs of
the eager model built *without* ``exportable=True`` (so an export-only layer that computes
something else is caught) within the onnx family's budget (registry.tolerances.ONNX), and
the graph's batch axis must be symbolic.

**Training checkpoints**: a checkpoint written by ``CheckpointSaver`` as train.py writes
it (harness.weights.training_checkpoints) must resume with ``resume_checkpoint`` (model
and optimizer state, the next epoch) and load with ``load_checkpoint`` (the EMA with
``use_ema=True``, the model without), each tensor bitwise as saved, under the running
torch's ``torch.load`` defaults (``weights_only=True`` since torch 2.6). Checked for the
candidate's own files and for the files each baseline release wrote (the compat
artifacts, ``python -m harness export``).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Mapping

import timm
import torch

from harness.checks import compare, onnx
from harness.checks.compat import ArtifactSet, verified_manifest
from harness.checks.numerics import calibrate_batchnorm, float64_copy
from harness.models import build
from harness.registry.tolerances import ONNX
from harness.weights import checkpoints, model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input
from harness.weights.training_checkpoints import (
    EPOCH,
    ema_class,
    load_expected,
    make_optimizer,
    momentum_by_name,
    write_training_checkpoint,
)

EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")


class UtilsSkip(Exception):
    """The release does not offer what the case needs (the reason the suite skips with)."""


def _first_line(exc: BaseException) -> str:
    root = onnx._chain(exc)[-1]
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    return f"{type(root).__name__}: {lines[0][:300] if lines else ''}"


# ----------------------------------------------------------------------------- onnx helper

def calibrated_checkpoint(model_name: str, input_size, workdir: Path) -> Path:
    """The deterministic weights with BN statistics calibrated on the seeded input, as a
    timm-native .safetensors file for the pretrained_cfg overlay."""
    model = model_cache.deterministic(model_name, "cpu")
    calibrate_batchnorm(model, make_input(model_name, input_size, BATCH_SIZE))
    return checkpoints.write_native_checkpoint(model.state_dict(), workdir / "weights", "safetensors")


def script_export_kwargs(exporter: str, input_size) -> dict:
    """The keyword arguments onnx_export.py passes (its defaults, ``--dynamo`` for the
    dynamo exporter, ``--input-size`` for the harness's input size), those this release's
    onnx_export takes. A release without ``use_dynamo`` has no dynamo exporter."""
    from timm.utils.onnx import onnx_export

    params = inspect.signature(onnx_export).parameters
    if exporter == "dynamo" and "use_dynamo" not in params:
        raise UtilsSkip(f"timm {build.timm_version()}'s onnx_export has no use_dynamo (no dynamo exporter)")
    script = dict(opset=None, dynamic_size=False, aten_fallback=False, keep_initializers=False, check_forward=False,
                  training=False, verbose=False, use_dynamo=exporter == "dynamo", input_size=tuple(input_size),
                  batch_size=1)
    return {k: v for k, v in script.items() if k in params}


def _script_model(model_name: str, overlay: dict, reparameterize: bool, exportable: bool) -> torch.nn.Module:
    """The model onnx_export.py builds (``exportable=True``; the reference without it)."""
    model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay,
                              **({"exportable": True} if exportable else {}))
    if reparameterize:
        from timm.utils.model import reparameterize_model
        model = reparameterize_model(model)
    return model.eval()


def check_timm_onnx(model_name: str, input_size, exporter: str, workdir: Path, reparameterize: bool = False) -> None:
    """onnx_export as onnx_export.py calls it, then onnx_forward against eager."""
    from timm.utils.onnx import onnx_export, onnx_forward

    kwargs = script_export_kwargs(exporter, input_size)
    what = f"timm.utils.onnx.onnx_export(use_dynamo={exporter == 'dynamo'})" + \
        (" after reparameterize_model" if reparameterize else "")
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = checkpoints.file_overlay(calibrated_checkpoint(model_name, input_size, workdir))
    model = _script_model(model_name, overlay, reparameterize, exportable=True)
    reference = _script_model(model_name, overlay, reparameterize, exportable=False)  # what the ONNX file must compute
    reference64 = float64_copy(reference)
    path = workdir / f"{model_name}-timm-{exporter}.onnx"
    try:
        onnx_export(model, str(path), **kwargs)
    except Exception as exc:
        op = onnx.failing_op(exc)
        where = onnx.traceback_module(exc, model)
        raise AssertionError(f"{what} raised" + (f" at op {op}" if op else "") +
                             (f" in module {where or '(root)'}" if where is not None else "") +
                             f": {_first_line(exc)}") from None
    static = onnx.static_batch_inputs(path)
    if static:
        raise AssertionError(f"{what}: the batch axis is not dynamic in the ONNX graph: {', '.join(static)}")
    for batch in onnx.RUN_BATCHES:
        x = make_input(model_name, input_size, batch)
        try:
            got = torch.from_numpy(onnx_forward(str(path), x))
        except Exception as exc:
            raise AssertionError(f"{what}: timm's onnx_forward at batch {batch} (exported at batch 1) raised "
                                 f"{_first_line(exc)}") from None
        with torch.no_grad():
            want = compare.flatten_outputs(reference(x))[0]
            want64 = compare.flatten_outputs(reference64(x.double()))[0] if reference64 is not None else None
        compare.assert_within_budget(got, want, want64, ONNX, f"{what}: onnx_forward at batch {batch}",
                                     "the eager model (built without exportable=True)")
    onnx.remove_export(path)


# ----------------------------------------------------------------------------- training checkpoints

def state_differences(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys missing or extra, and tensors not bitwise equal to the saved ones."""
    lines = [f"{k}: not restored" for k in want if k not in got]
    lines += [f"{k}: restored but never saved" for k in got if k not in want]
    for k, v in want.items():
        if k in got:
            g = got[k].detach().cpu()
            if g.shape != v.shape or g.dtype != v.dtype or not torch.equal(g, v):
                diff = compare.error_summary(g, v) if g.shape == v.shape else \
                    f"shape {tuple(g.shape)} vs {tuple(v.shape)}"
                lines.append(f"{k}: differs from the saved tensor, {diff}")
    return lines


def _call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise AssertionError(f"{what} raised {_first_line(exc)}") from None


def _assert_state(what: str, got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    lines = state_differences(got, want)
    if lines:
        raise AssertionError(f"{what}: " + compare._listing("tensors unlike the saved ones", lines))


def assert_resumes(model_name: str, checkpoint: Path, expected: Path, written_by: str,
                   create_kwargs: dict | None = None) -> None:
    """Resume and load ``checkpoint`` on the candidate as train.py / validate.py do."""
    from timm.models import load_checkpoint, resume_checkpoint

    want = load_expected(expected)
    source = f"{checkpoint.name} written by {written_by}"
    model = build.create(model_name, device="cpu", **(create_kwargs or {}))
    optimizer = make_optimizer(model)
    what = f"resume_checkpoint(model, {source}, optimizer=...)"
    epoch = _call(what, resume_checkpoint, model, str(checkpoint), optimizer=optimizer, loss_scaler=None,
                  log_info=False)
    _assert_state(f"{what}: the model", model.state_dict(), want["model"])
    _assert_state(f"{what}: the optimizer's momentum buffers (by parameter name)",
                  momentum_by_name(model, optimizer), want["momentum"])
    if epoch != EPOCH + 1:
        raise AssertionError(f"{what} returned epoch {epoch!r}; a checkpoint saved after epoch {EPOCH} "
                             f"(CheckpointSaver version 2) resumes at {EPOCH + 1}")
    ema = ema_class()(model, decay=0.5)
    what = f"load_checkpoint(model_ema.module, {source}, use_ema=True)"
    _call(what, load_checkpoint, ema.module, str(checkpoint), use_ema=True)
    _assert_state(what, ema.module.state_dict(), want["ema"])
    fresh = build.create(model_name, device="cpu", **(create_kwargs or {}))
    what = f"load_checkpoint(model, {source}, use_ema=False)"
    _call(what, load_checkpoint, fresh, str(checkpoint), use_ema=False)
    _assert_state(what, fresh.state_dict(), want["model"])


def check_train_checkpoint(model_name: str, input_size, workdir: Path) -> None:
    """The candidate's own CheckpointSaver file resumes and loads on the candidate."""
    what = "CheckpointSaver.save_checkpoint (as train.py)"
    checkpoint, expected = _call(what, write_training_checkpoint, model_name, workdir, input_size)
    assert_resumes(model_name, checkpoint, expected, f"timm {build.timm_version()}")


def check_train_checkpoint_artifact(artifact: ArtifactSet) -> None:
    """The training checkpoint a baseline release wrote (compat artifacts, hashes verified
    before anything is loaded) resumes and loads on the candidate."""
    manifest = verified_manifest(artifact)
    entry = manifest.train_checkpoint
    if entry is None:
        raise AssertionError(f"artifact {artifact!r} holds no training checkpoint (written by an older harness); "
                             f"re-run `python -m harness export` under timm {manifest.timm}")
    if entry.get("error"):
        raise UtilsSkip(f"timm {manifest.timm} could not write a training checkpoint: {entry['error']}")
    assert_resumes(artifact.model, manifest.file(entry["file"]), manifest.file(entry["expected"]),
                   f"timm {manifest.timm}", manifest.create_kwargs)
