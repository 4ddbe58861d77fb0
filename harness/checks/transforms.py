"""The transforms check family: what users do to a model after create_model keeps its
function. Each transform runs the deterministic model (BN statistics calibrated on the
input, as the reparam and onnx checks do) and is compared with the eager model within
the budget its own float64 run sets (registry.tolerances.TRANSFORMS):

- ``compile_eager`` / ``compile_aot_eager``: ``torch.compile`` with a CPU backend that
  captures the graph (dynamo) without code generation; ``compile_eager`` also counts the
  graph breaks (``torch._dynamo.explain``) against the recorded count in
  ``expected/graph_breaks.json`` (0 for a model it does not list): more is a failure,
  fewer an "improved" note to re-record (as PyTorch's dynamo benchmark CSVs do). ``compile_inductor`` runs on CUDA
  only (the nightly).
- ``jit_script``: ``torch.jit.script`` of a model built under ``set_scriptable(True)``,
  as timm's own TorchScript test builds it, for models timm claims scriptable.
- ``fx_trace``: timm's ``create_feature_extractor`` (torch.fx with timm's leaf modules and
  autowrapped functions) returning the last node, as timm's own FX test does, for models
  timm claims traceable.
- ``channels_last``: model and input in ``torch.channels_last``.
- ``batch_invariance``: sample i of a batch of 3 equals sample i run alone.
- ``grad_checkpointing``: train mode, ``set_grad_checkpointing(True)`` keeps the outputs
  and every parameter's gradient.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from harness.checks import compare
from harness.checks.numerics import calibrate_batchnorm, float64_copy
from harness.models import build
from harness.models.claims import claims
from harness.registry.tolerances import INDUCTOR_CUDA, TRANSFORMS, Tolerance
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input, seed_for

COMPILE_BACKENDS = ("eager", "aot_eager")  # CPU graph capture; inductor: CUDA only
CPU_TRANSFORMS = ("compile_eager", "compile_aot_eager", "jit_script", "fx_trace", "channels_last",
                  "batch_invariance", "grad_checkpointing")
CUDA_TRANSFORMS = ("compile_inductor",)
INVARIANCE_BATCH = 3
RECORD_COMMAND = "python -m pytest suites -m transforms -k compile_eager --models '{model}' --update-graph-breaks"


class TransformSkip(Exception):
    """The model does not offer what the transform needs (a reason the suite skips with)."""


@dataclass
class TransformResult:
    transform: str
    errors: dict[str, tuple[float, float]] = field(default_factory=dict)  # what -> (error, budget)
    graph_breaks: int | None = None
    break_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_LAZY = object()


@dataclass
class Subject:
    """The deterministic eager model, its input, and both references. The float64 outputs
    are computed on first use (``outputs64``): a transform whose outputs equal the eager
    ones bit for bit needs no budget, so most never pay for the float64 forward. The float64
    model itself is copied up front, before any eval-mode forward (see float64_copy)."""

    model: nn.Module
    model64: nn.Module | None
    x: torch.Tensor
    outputs: list[torch.Tensor]
    _outputs64: object = _LAZY
    make64: Callable[[], list[torch.Tensor] | None] | None = None  # default: model64 on x

    @property
    def outputs64(self) -> list[torch.Tensor] | None:
        if self._outputs64 is _LAZY:
            self._outputs64 = self.make64() if self.make64 is not None else _outputs64(self.model64, self.x)
        return self._outputs64


def _outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach() for t in compare.flatten_outputs(model(x))]


def _outputs64(model64: nn.Module | None, x: torch.Tensor) -> list[torch.Tensor] | None:
    if model64 is None:
        return None
    try:
        return _outputs(model64, x.double())
    except Exception:  # noqa: BLE001 - no float64 kernel for some op: the budget's floor applies
        return None


_subjects: dict[tuple, Subject] = {}


def subject(model_name: str, input_size: tuple[int, ...], batch: int = BATCH_SIZE) -> Subject:
    """The model's subject, built once per worker for all its transforms (one kept at a
    time, like the model cache). Checks never modify ``subject.model``: those that change
    it (train mode, memory format) work on a copy."""
    key = (model_name, tuple(input_size), batch)
    if key not in _subjects:
        _subjects.clear()
        model = model_cache.deterministic(model_name, "cpu")
        x = make_input(model_name, input_size, batch)
        calibrate_batchnorm(model, x)
        model64 = float64_copy(model)
        _subjects[key] = Subject(model, model64, x, _outputs(model, x))
    return _subjects[key]


def applicable(model_name: str, cuda: bool) -> tuple[str, ...]:
    """The transforms collected for a model: every CPU transform, TorchScript and FX only
    where timm claims them (models.claims), inductor only on CUDA."""
    names = tuple(t for t in CPU_TRANSFORMS if t not in ("jit_script", "fx_trace")
                  or claims("jit" if t == "jit_script" else "fx", model_name))
    return names + (CUDA_TRANSFORMS if cuda else ())


def assert_outputs(got: list[torch.Tensor], subj: Subject, what: str, result: TransformResult,
                   tol: Tolerance = TRANSFORMS, against: str = "eager") -> None:
    if len(got) != len(subj.outputs):
        raise AssertionError(f"{what}: {len(got)} outputs, {against} {len(subj.outputs)}")
    for i, (g, w) in enumerate(zip(got, subj.outputs)):
        label = f"{what}: output {i}" if len(got) > 1 else f"{what}: output"
        identical = compare.bitwise_equal([g], [w])  # no budget needed: the float64 run is skipped
        ref64 = subj.outputs64[i] if not identical and subj.outputs64 is not None else None
        result.errors[label] = compare.assert_within_budget(g, w, ref64, tol, label, against)


# ----------------------------------------------------------------------------- compile

@dataclass(frozen=True)
class GraphBreaks:
    """The recorded graph-break counts (expected/graph_breaks.json)."""

    path: Path
    counts: dict[str, int]
    torch: str = ""

    @staticmethod
    def load(path: Path) -> "GraphBreaks":
        if not path.is_file():
            return GraphBreaks(path, {})
        try:
            data = json.loads(path.read_text())
            counts = {str(k): int(v) for k, v in data["graph_breaks"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AssertionError(f"{path}: unreadable graph-break record ({type(exc).__name__}: {exc}); "
                                 f"re-record it with --update-graph-breaks") from None
        return GraphBreaks(path, counts, str(data.get("torch", "")))


def write_graph_breaks(path: Path, counts: dict[str, int]) -> None:
    """Merge counts into the record (written by the controller only, atomically)."""
    data = {"note": "torch.compile graph-break counts per model on the CPU (dynamo explain); more breaks than "
                    "recorded fail the transforms check, fewer are reported as improved. Re-record with "
                    "`python -m pytest suites -m transforms -k compile_eager --models ... --update-graph-breaks`.",
            "torch": torch.__version__, "timm": build.timm_version(), "graph_breaks": {}}
    if path.is_file():
        old = json.loads(path.read_text())
        data["graph_breaks"] = dict(old.get("graph_breaks", {}))
    data["graph_breaks"].update(counts)
    data["graph_breaks"] = dict(sorted(data["graph_breaks"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def count_graph_breaks(model: nn.Module, x: torch.Tensor) -> tuple[int, list[str]]:
    """Graph breaks dynamo takes capturing the forward, with the first reasons."""
    import torch._dynamo as dynamo

    dynamo.reset()
    with torch.no_grad():
        explained = dynamo.explain(model)(x)
    reasons = []
    for b in explained.break_reasons[:5]:
        where = b.user_stack[-1] if getattr(b, "user_stack", None) else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where is not None else ""
        reasons.append(f"{str(b.reason).splitlines()[0][:200]}{at}")
    return explained.graph_break_count, reasons


def compare_graph_breaks(model_name: str, breaks: int, reasons: list[str], record: GraphBreaks,
                         result: TransformResult) -> None:
    """More breaks than recorded fail; a model without a record is expected to have none
    (the record lists the measured counts; only the models with breaks need it)."""
    expected = record.counts.get(model_name, 0)
    why = f" (first: {'; '.join(reasons)})" if reasons else ""
    if breaks > expected:
        recorded = f"{expected} recorded" if model_name in record.counts else \
            f"expected 0 ({record.path} records no count for {model_name})"
        torch_note = f" (recorded under torch {record.torch})" if record.torch and record.torch != torch.__version__ \
            else ""
        raise AssertionError(f"torch.compile: {breaks} graph break(s), {recorded}{torch_note}{why}; if accepted, "
                             f"record them with: {RECORD_COMMAND.format(model=model_name)}")
    if breaks < expected:
        result.notes.append(f"{model_name}: improved, {breaks} graph break(s) where {expected} are recorded; "
                            f"re-record with: {RECORD_COMMAND.format(model=model_name)}")


def check_compile(model_name: str, input_size: tuple[int, ...], backend: str,
                  record: GraphBreaks | None = None) -> TransformResult:
    """torch.compile(model, backend=...) against eager; with ``record`` (the eager
    backend) the graph breaks are counted and compared with it. ``record=None`` with
    backend 'eager' returns the count without comparing (recording mode)."""
    import torch._dynamo as dynamo

    result = TransformResult(f"compile_{backend}")
    subj = subject(model_name, input_size)
    if backend == "eager":
        result.graph_breaks, result.break_reasons = count_graph_breaks(subj.model, subj.x)
    dynamo.reset()
    compiled = torch.compile(subj.model, backend=backend)
    try:
        got = _outputs(compiled, subj.x)
    finally:
        dynamo.reset()
    assert_outputs(got, subj, f"torch.compile(backend={backend!r})", result)
    if record is not None and result.graph_breaks is not None:
        compare_graph_breaks(model_name, result.graph_breaks, result.break_reasons, record, result)
    return result


def check_inductor_cuda(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    """torch.compile with inductor on CUDA (TF32 off) against eager CUDA, the budget set
    by the CUDA eager output's error against the CPU float64 run."""
    import torch._dynamo as dynamo

    result = TransformResult("compile_inductor")
    subj = subject(model_name, input_size)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        model, x = subj.model.cuda(), subj.x.cuda()
        eager = _outputs(model, x)
        dynamo.reset()
        got = _outputs(torch.compile(model, backend="inductor"), x)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        dynamo.reset()
    cuda_subj = Subject(model, None, x, [t.cpu() for t in eager], make64=lambda: subj.outputs64)
    assert_outputs([t.cpu() for t in got], cuda_subj, "torch.compile(backend='inductor') on CUDA", result,
                   INDUCTOR_CUDA)
    return result


# ----------------------------------------------------------------------------- script / trace

def _jit_error(exc: BaseException) -> str:
    """The TorchScript error's message and the source line it points at. A class that
    failed to script once cannot be compiled again in the same process ("Can't redefine
    method"): said so, since the cause is the earlier failure's."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and set(ln.strip()) != {"~"}]
    text = " | ".join(lines[:4])[:500]
    if "Can't redefine method" in text:
        text += (" (this class already failed to script earlier in this process; that first failure names the "
                 "cause: run this model alone to see it)")
    return text


def check_jit_script(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    """As timm's test_model_forward_torchscript: create_model under set_scriptable(True),
    then torch.jit.script; here with the deterministic weights, against eager."""
    from timm.layers import set_scriptable

    result = TransformResult("jit_script")
    subj = subject(model_name, input_size)
    with set_scriptable(True):
        scriptable = build.create(model_name, device="cpu")
    scriptable.load_state_dict(subj.model.state_dict(), strict=True)
    scriptable.eval()
    try:
        scripted = torch.jit.script(scriptable)
    except Exception as exc:
        raise AssertionError(f"torch.jit.script({model_name}) raised {type(exc).__name__}: {_jit_error(exc)}") from None
    assert_outputs(_outputs(scripted, subj.x), subj, "torch.jit.script", result)
    return result


def check_fx_trace(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    """As timm's test_model_forward_fx: timm's get_graph_node_names and
    create_feature_extractor returning the last eval node, against eager."""
    from timm.models import create_feature_extractor, get_graph_node_names

    result = TransformResult("fx_trace")
    subj = subject(model_name, input_size)
    model = copy.deepcopy(subj.model)  # a failed trace leaves the model in train mode
    try:
        _, eval_nodes = get_graph_node_names(model)
        traced = create_feature_extractor(model, return_nodes=[eval_nodes[-1]]).eval()
    except Exception as exc:
        raise AssertionError(f"FX tracing of {model_name} (timm create_feature_extractor) raised "
                             f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
    with torch.no_grad():
        got = [t for v in traced(subj.x).values() for t in compare.flatten_outputs(v)]
    assert_outputs(got, subj, "FX graph module", result)
    return result


# ----------------------------------------------------------------------------- layout / batch

def check_channels_last(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    result = TransformResult("channels_last")
    subj = subject(model_name, input_size)
    model = copy.deepcopy(subj.model).to(memory_format=torch.channels_last)
    x = subj.x.contiguous(memory_format=torch.channels_last)
    assert_outputs(_outputs(model, x), subj, "channels_last", result)
    return result


def check_batch_invariance(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    """Each sample of a batch of INVARIANCE_BATCH run alone gives its row of the batched
    output (eval mode: nothing may mix samples)."""
    result = TransformResult("batch_invariance")
    subj = subject(model_name, input_size, INVARIANCE_BATCH)
    for i in range(INVARIANCE_BATCH):
        alone = _outputs(subj.model, subj.x[i:i + 1])
        row = Subject(subj.model, None, subj.x[i:i + 1], [o[i:i + 1] for o in subj.outputs],
                      make64=lambda i=i: [o[i:i + 1] for o in subj.outputs64] if subj.outputs64 is not None else None)
        assert_outputs(alone, row, f"sample {i} run alone", result,
                       against=f"its row of the batch of {INVARIANCE_BATCH}")
    return result


# ----------------------------------------------------------------------------- gradient checkpointing

def _train_step(model: nn.Module, x: torch.Tensor, seed: int) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Outputs and parameter gradients of one train-mode forward/backward, the loss a fixed
    random projection of every output (so each output element gets its own gradient)."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    outs = compare.flatten_outputs(model(x))
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)).sum() for o in outs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], grads


def enable_grad_checkpointing(model: nn.Module) -> None:
    """model.set_grad_checkpointing(True); a model that declares it unsupported (timm's
    ``assert not enable, '... not supported'``) raises TransformSkip with its words."""
    setter = getattr(model, "set_grad_checkpointing", None)
    if not callable(setter):
        raise TransformSkip(f"{type(model).__name__} has no set_grad_checkpointing")
    try:
        setter(True)
    except (AssertionError, NotImplementedError) as exc:
        if "not supported" in str(exc) or "not implemented" in str(exc).lower():
            raise TransformSkip(f"set_grad_checkpointing(True): {exc}") from None
        raise


def check_grad_checkpointing(model_name: str, input_size: tuple[int, ...]) -> TransformResult:
    result = TransformResult("grad_checkpointing")
    subj = subject(model_name, input_size)
    seed = seed_for(model_name, "grad_checkpointing") % (2 ** 31)
    plain = copy.deepcopy(subj.model)
    checkpointed = copy.deepcopy(subj.model)
    enable_grad_checkpointing(checkpointed)
    outs, grads = _train_step(plain, subj.x, seed)
    try:
        outs_ckpt, grads_ckpt = _train_step(checkpointed, subj.x, seed)
    except Exception as exc:
        raise AssertionError(f"train-mode forward/backward with set_grad_checkpointing(True) raised "
                             f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
    missing = sorted(set(grads) - set(grads_ckpt))
    identical = (not missing and compare.bitwise_equal(outs, outs_ckpt)
                 and compare.bitwise_equal(grads.values(), [grads_ckpt[n] for n in grads]))
    ref64 = None  # the float64 train step sets the budget, needed only where something differs at all
    if subj.model64 is not None and not identical:
        try:
            ref64 = _train_step(copy.deepcopy(subj.model64), subj.x.double(), seed)
        except Exception:  # noqa: BLE001 - the floor applies
            ref64 = None
    train_subj = Subject(plain, None, subj.x, outs, ref64[0] if ref64 else None)
    assert_outputs(outs_ckpt, train_subj, "gradient checkpointing (train mode)", result,
                   against="without checkpointing")
    if missing:
        raise AssertionError(compare._listing("parameters without a gradient under gradient checkpointing", missing))
    for name, g in grads.items():
        g64 = ref64[1].get(name) if ref64 else None
        result.errors[name] = compare.assert_within_budget(grads_ckpt[name], g, g64, TRANSFORMS,
                                                           f"gradient checkpointing: gradient of {name}",
                                                           "without checkpointing")
    return result


CHECKS: dict[str, Callable[[str, tuple[int, ...]], TransformResult]] = {
    "compile_aot_eager": lambda m, s: check_compile(m, s, "aot_eager"),
    "compile_inductor": check_inductor_cuda,
    "jit_script": check_jit_script,
    "fx_trace": check_fx_trace,
    "channels_last": check_channels_last,
    "batch_invariance": check_batch_invariance,
    "grad_checkpointing": check_grad_checkpointing,
}


def check_transform(model_name: str, input_size: tuple[int, ...], transform: str,
                    graph_breaks: GraphBreaks | None = None) -> TransformResult:
    """One transforms case. ``compile_eager`` compares graph breaks with ``graph_breaks``
    (None: count only, for --update-graph-breaks)."""
    if transform == "compile_eager":
        return check_compile(model_name, input_size, "eager", graph_breaks)
    if transform not in CHECKS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {CPU_TRANSFORMS + CUDA_TRANSFORMS}")
    return CHECKS[transform](model_name, input_size)
