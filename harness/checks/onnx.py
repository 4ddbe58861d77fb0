"""The onnx check: a model exported to ONNX computes what the eager model computes.

Each model is exported twice, once by each of PyTorch's exporters (EXPORTERS): the
TorchScript-based one (``torch.onnx.export(..., dynamo=False)``, which traces the forward
with real tensors) and the dynamo one (``dynamo=True``: ``torch.export`` + onnxscript).
Both export at batch EXPORT_BATCH with the batch axis declared dynamic, the file must pass
``onnx.checker``, and an onnxruntime CPU session must reproduce the eager outputs at
RUN_BATCHES, batch sizes other than the export batch, so an exporter (or a model) that
baked the batch size into the graph is caught. Reparameterizable models are also exported
after ``reparameterize_model`` (what deployment does).

Failures name the exporter and where it failed: the op the exporter names in its error,
the innermost module whose forward was running when it raised (from the traceback), and
otherwise the first module that fails on its own (locate_failing_module: children are
exported one by one with the inputs they saw in an eager forward, descending into the
first that fails, a bounded number of exports).
"""
from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from harness.checks import compare
from harness.checks.numerics import calibrate_batchnorm, describe_budget, error_budget, float64_copy
from harness.models import build
from harness.models.discovery import reparameterize_model
from harness.models.module_tree import failing_module, module_paths, modules_left_none
from harness.registry.tolerances import ONNX
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input

EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
EXPORT_BATCH = BATCH_SIZE            # the example batch the graph is traced with
RUN_BATCHES: tuple[int, ...] = (1, 3)  # onnxruntime runs: both differ from the export batch
MAX_BATCH = 1024                      # upper bound of the dynamic batch dimension (dynamo)

# The onnxruntime output's error budget against eager: registry.tolerances.ONNX.
# Bisection: at most this many submodule exports to locate a failure (a hint, bounded).
MAX_PROBES = 24
MAX_PROBE_SECONDS = 180.0  # ... and stops descending after this long (dynamo exports are slow)
PROBE_RTOL = 1e-3  # a submodule's ORT output "differs" beyond this x max|its eager output|


class OnnxCheckError(AssertionError):
    """An onnx check failure; the message starts with the exporter's name."""


@dataclass(frozen=True)
class OnnxResult:
    """What a passing check measured, per run batch: (max abs err vs eager, budget)."""

    exporter: str
    errors: dict[int, tuple[float, float]]


# ----------------------------------------------------------------------------- export

def _eager(model: nn.Module, args: tuple) -> list[torch.Tensor]:
    with torch.no_grad():
        return compare.flatten_outputs(model(*args))


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, exporter: str) -> list[str]:
    """Export ``model(*args)`` to ``path`` with dim 0 of every input and output dynamic
    ('batch'); returns the output names. Exporter exceptions propagate unchanged."""
    try:
        n_out = len(_eager(model, args))
    except Exception:  # noqa: BLE001 - the exporter traces the same forward and raises itself
        n_out = 1
    inputs = [f"input_{i}" for i in range(len(args))]
    outputs = [f"output_{i}" for i in range(n_out)]
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            torch.onnx.export(model, args, str(path), dynamo=True, input_names=inputs, output_names=outputs,
                              dynamic_shapes=tuple({0: batch} for _ in args), artifacts_dir=str(path.parent))
        else:
            raise ValueError(f"unknown exporter {exporter!r}; expected one of {EXPORTERS}")
    return outputs


def static_batch_inputs(path: Path) -> list[str]:
    """'name: dim 0 = N' for each graph input whose batch dimension is a fixed number."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    static = []
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            static.append(f"{value.name}: dim 0 = {dims[0].dim_value}")
    return static


def remove_export(path: Path) -> None:
    """Delete an exported file and its external-data file (the dynamo exporter writes
    initializers to '<name>.data' next to it)."""
    for f in (path, path.with_name(f"{path.name}.data")):
        f.unlink(missing_ok=True)


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_run(session, args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    feeds = {i.name: a.detach().cpu().numpy() for i, a in zip(session.get_inputs(), args)}
    return [torch.from_numpy(o) for o in session.run(None, feeds)]


# ----------------------------------------------------------------------------- diagnosis

_OP_PATTERNS = (
    re.compile(r"operator '?((?:aten|prim|onnx)::\w+)"),
    re.compile(r"\b((?:aten|prim)::\w+)"),
    re.compile(r"torch\.ops\.((?:aten|prims)\.\w+(?:\.\w+)?)"),
    re.compile(r"target=((?:aten|prims)\.\w+(?:\.\w+)?)"),
    re.compile(r"\b(aten\.\w+\.(?:default|Tensor|Scalar|int|dim|self|input)\w*)"),
)


def _chain(exc: BaseException) -> list[BaseException]:
    """exc and its causes/contexts, outermost first."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def failing_op(exc: BaseException) -> str | None:
    """The first ATen/ONNX op an exporter error names (e.g. 'aten::unfold')."""
    for pattern in _OP_PATTERNS:
        for e in _chain(exc):
            m = pattern.search(str(e))
            if m:
                return m.group(1)
    return None


def traceback_module(exc: BaseException, model: nn.Module) -> str | None:
    """The innermost module of ``model`` whose forward was running when any exception of
    the chain was raised (Python-level failures while tracing), or None."""
    for e in reversed(_chain(exc)):
        where = failing_module(e, model)
        if where is not None:
            return where
    return None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """'Type: first meaningful line' of the root cause (exporter errors wrap it in
    several layers of advice)."""
    root = _chain(exc)[-1]
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return f"{type(root).__name__}: {text[:limit]}"


def _capture_inputs(model: nn.Module, batches: dict[int, tuple]) -> dict[str, dict[int, tuple]]:
    """For every submodule called with positional tensor arguments only: its inputs at each
    batch (first call), keyed by path, in call order."""
    paths = {m: name for name, m in model.named_modules() if name}
    captured: dict[str, dict[int, tuple]] = {}
    current = {"batch": 0}

    def hook(module, args, kwargs):
        path = paths.get(module)
        if path is None or kwargs or not args or not all(isinstance(a, torch.Tensor) for a in args):
            return
        captured.setdefault(path, {}).setdefault(current["batch"], tuple(a.detach().clone() for a in args))

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in paths]
    try:
        for batch, args in batches.items():
            current["batch"] = batch
            try:
                _eager(model, args)
            except Exception:  # noqa: BLE001 - a partial capture still helps
                pass
    finally:
        for h in handles:
            h.remove()
    return captured


def locate_failing_module(model: nn.Module, batches: dict[int, tuple],
                          probe: Callable[[nn.Module, dict[int, tuple]], str | None],
                          max_probes: int = MAX_PROBES,
                          max_seconds: float = MAX_PROBE_SECONDS) -> tuple[str, str] | None:
    """(path, what failed) of the deepest module found failing on its own, or None.

    Descends from the root: the children of the current module are probed in call order
    with the inputs they saw in eager forwards, and the first that fails becomes current.
    ``probe(module, inputs_by_batch)`` returns a failure description or None. Children
    with non-tensor or keyword inputs are not probed; at most ``max_probes`` probes run,
    and none starts after ``max_seconds`` (the deepest failing module found so far is kept)."""
    deadline = time.monotonic() + max_seconds
    captured = _capture_inputs(model, batches)
    current, found, probes = "", None, 0
    while probes < max_probes:
        prefix = f"{current}." if current else ""
        children = [p for p in captured if p.startswith(prefix) and "." not in p[len(prefix):]
                    and len(captured[p]) == len(batches)]
        failing = None
        for path in children:
            if probes >= max_probes or time.monotonic() > deadline:
                break
            probes += 1
            try:
                failing = probe(model.get_submodule(path), captured[path])
            except Exception as exc:  # noqa: BLE001 - the probe's own trouble is a failure too
                failing = _first_line(exc)
            if failing:
                current, found = path, (path, failing)
                break
        if not failing:
            break
    return found


# ----------------------------------------------------------------------------- the check

def _float64_outputs(model64: nn.Module | None, batches: dict[int, tuple]) -> dict[int, list[torch.Tensor]] | None:
    if model64 is None:
        return None
    try:
        return {b: _eager(model64, tuple(a.double() for a in args)) for b, args in batches.items()}
    except Exception:  # noqa: BLE001 - some ops have no float64 kernel; the floor applies
        return None


def _export_probe(exporter: str, workdir: Path) -> Callable[[nn.Module, dict[int, tuple]], str | None]:
    """A bisection probe: export the submodule, run it in onnxruntime at every batch and
    compare with its eager outputs (a coarse relative tolerance: only a hint)."""
    counter = {"n": 0}

    def probe(module: nn.Module, inputs: dict[int, tuple]) -> str | None:
        counter["n"] += 1
        path = workdir / f"probe_{counter['n']}.onnx"
        args = inputs[EXPORT_BATCH] if EXPORT_BATCH in inputs else next(iter(inputs.values()))
        try:
            export(module, args, path, exporter)
        except Exception as exc:  # noqa: BLE001
            op = failing_op(exc)
            return f"export fails{f' at {op}' if op else ''}: {_first_line(exc)}"
        try:
            session = ort_session(path)
            for batch, batch_args in inputs.items():
                if batch == EXPORT_BATCH:
                    continue
                got, want = ort_run(session, batch_args), _eager(module, batch_args)
                for g, w in zip(got, want):
                    if tuple(g.shape) != tuple(w.shape):
                        return f"onnxruntime at batch {batch}: shape {tuple(g.shape)}, eager {tuple(w.shape)}"
                    err = (g.double() - w.double()).abs().max().item()
                    if err > PROBE_RTOL * max(w.abs().max().item(), 1e-6):
                        return f"onnxruntime at batch {batch} differs from eager: {compare.error_summary(g, w)}"
        except Exception as exc:  # noqa: BLE001
            return f"onnxruntime fails: {_first_line(exc)}"
        finally:
            remove_export(path)
        return None
    return probe


def _located(model: nn.Module, batches: dict[int, tuple], exporter: str, workdir: Path) -> str:
    found = locate_failing_module(model, batches, _export_probe(exporter, workdir / "probes"))
    return f"; first failing module (exported alone): {found[0]} ({found[1]})" if found else ""


def check_onnx(model_name: str, input_size: tuple[int, ...], exporter: str, workdir: Path,
               reparameterize: bool = False) -> OnnxResult:
    """Export ``model_name`` (deterministic weights, BN statistics calibrated, eval mode;
    reparameterized first when asked) with ``exporter``; check the file with onnx.checker
    and compare onnxruntime with eager at RUN_BATCHES. Raises OnnxCheckError naming the
    exporter and the failing op/module, or the output and its error."""
    import onnx

    what = f"{exporter} export" + (" after reparameterize_model" if reparameterize else "")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "probes").mkdir(exist_ok=True)
    model = fill_deterministic(build.create(model_name, device="cpu"), model_name)
    batches = {b: (make_input(model_name, input_size, b),) for b in (EXPORT_BATCH, *RUN_BATCHES)}
    calibrate_batchnorm(model, batches[EXPORT_BATCH][0])
    before = module_paths(model)
    if reparameterize:
        try:
            model = reparameterize_model(model)
        except Exception as exc:
            raise OnnxCheckError(f"{what}: reparameterize_model raised {_first_line(exc)}") from None

    model64 = float64_copy(model)
    path = workdir / f"{model_name}-{exporter}{'-reparam' if reparameterize else ''}.onnx"
    try:
        output_names = export(model, batches[EXPORT_BATCH], path, exporter)
    except OnnxCheckError:
        raise
    except Exception as exc:
        op = failing_op(exc)
        where = traceback_module(exc, model)
        located = "" if where is not None else _located(model, batches, exporter, workdir)
        left = modules_left_none(before, model) if reparameterize else []
        if where:
            left = [p for p in left if p.startswith(f"{where}.")] or left
        parts = [f"{what} failed" + (f" at op {op}" if op else "") + (f" in module {where or '(root)'}"
                                                                         if where is not None else "")]
        parts.append(_first_line(exc))
        message = ": ".join(parts) + located
        if left:
            message += f"; reparameterize left None where modules were: {', '.join(left)}"
        raise OnnxCheckError(f"{message}\n{str(exc)[:2000]}") from None

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise OnnxCheckError(f"{what}: onnx.checker rejects the file: {_first_line(exc)}") from None

    static = static_batch_inputs(path)
    if static:
        raise OnnxCheckError(f"{what}: the batch axis is not dynamic in the ONNX graph: {', '.join(static)} "
                             f"(the exporter specialized it to the export batch; does the forward read the "
                             f"batch size as a Python int?){_located(model, batches, exporter, workdir)}")

    eager = {b: _eager(model, args) for b, args in batches.items() if b in RUN_BATCHES}
    ref64 = _float64_outputs(model64, {b: batches[b] for b in RUN_BATCHES})
    del model64
    session = ort_session(path)
    errors: dict[int, tuple[float, float]] = {}
    for batch in RUN_BATCHES:
        try:
            got = ort_run(session, batches[batch])
        except Exception as exc:
            raise OnnxCheckError(f"{what}: onnxruntime run at batch {batch} (exported at batch {EXPORT_BATCH}) "
                                 f"failed: {_first_line(exc)}{_located(model, batches, exporter, workdir)}") from None
        want = eager[batch]
        if len(got) != len(want):
            raise OnnxCheckError(f"{what}: onnxruntime returned {len(got)} outputs, eager {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            name = output_names[i]
            if tuple(g.shape) != tuple(w.shape):
                raise OnnxCheckError(f"{what}: output {name} at batch {batch} (exported at batch {EXPORT_BATCH}) "
                                     f"has shape {tuple(g.shape)} in onnxruntime, eager {tuple(w.shape)}"
                                     f"{_located(model, batches, exporter, workdir)}")
            compare.assert_finite(w, f"eager output {name} at batch {batch}")
            err = (g.double() - w.double()).abs().max().item()
            err32 = (w.double() - ref64[batch][i]).abs().max().item() if ref64 is not None else 0.0
            budget = error_budget(ONNX, err32, w.abs().max().item())
            if not err <= budget:
                raise OnnxCheckError(
                    f"{what}: output {name} at batch {batch} differs between onnxruntime and eager: "
                    f"{compare.error_summary(g, w)}; budget {describe_budget(ONNX, err32, budget)} (float32 error "
                    f"{err32:.3g}){_located(model, batches, exporter, workdir)}")
            errors[batch] = max(errors.get(batch, (0.0, budget)), (err, budget))
    remove_export(path)
    return OnnxResult(exporter, errors)
