"""The layers check family: timm.layers against trusted references, layer by layer. A
golden output says "same as last time"; this says "right".

Discovery scans every module of timm.layers for nn.Module classes and matches each on the
table in registry.layer_references: timm's norm / activation name registries, torch base
classes, the ``fused_attn`` switch an attention layer reads, the pool names of
SelectAdaptivePool2d. Each matched layer is built generically (its first constructor
argument gets the channel count, ``num_heads`` a divisor of it), given seeded random
weights, run in float32 on seeded random inputs with a non-zero mean (so a norm that forgets
to centre, or centres when it must not, is caught), and compared with the reference
computed in float64. The budget is the one rule, numerics.error_budget, with err32 the
reference's own float32 error on the same input (registry.tolerances.LAYERS).

Ids: ``<LayerClass>-<variant>``, e.g. ``LayerNorm2d-fast_norm``, ``Attention-explicit``,
``SelectAdaptivePool2d-catavgmax``: the layer takes the model's place in the test-id
grammar (registry.test_ids.model_of gives the class name)."""
from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.checks.numerics import describe_budget, error_budget, max_abs_error
from harness.registry import layer_references as table
from harness.registry.tolerances import LAYERS
from harness.weights.deterministic import fill_deterministic, seed_for

CHANNELS = 32
HEADS = 4
TOKENS = 11
SPATIAL = (5, 7)


@dataclass(frozen=True)
class LayerCase:
    name: str            # the id's first part: the class name (module-qualified only on a clash)
    path: str            # module:qualname
    kind: str            # 'norm', 'act', 'attention', 'pool'
    reference: str       # key of REFERENCES (norm/act/pool) or 'attention'
    variant: str         # 'default', 'fast_norm', 'fused_attn', 'explicit', a pool name
    layout: str = "last"  # 'last' (channels last dim) or 'nchw'
    kwargs: tuple = ()   # extra constructor kwargs, as (name, value) pairs

    @property
    def id(self) -> str:
        return f"{self.name}-{self.variant}"

    def __repr__(self) -> str:
        return self.id

    def layer_class(self) -> type:
        module, qualname = self.path.split(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj


# ---------------------------------------------------------------- references (float64 in, float64 out)

def _channels_last(fn: Callable) -> Callable:
    """Apply a last-dim reference to an NCHW tensor (permute, apply, permute back)."""
    def wrapped(x, layer, layout):
        if layout != "nchw":
            return fn(x, layer)
        return fn(x.permute(0, 2, 3, 1), layer).permute(0, 3, 1, 2)
    return wrapped


def _affine(layer: nn.Module, name: str, dtype) -> torch.Tensor | None:
    t = getattr(layer, name, None)
    return t.detach().to(dtype) if isinstance(t, torch.Tensor) else None


def _eps(layer: nn.Module) -> float:
    return float(getattr(layer, "eps", 1e-5))


@_channels_last
def _layer_norm(x, layer):
    return F.layer_norm(x, (x.shape[-1],), _affine(layer, "weight", x.dtype), _affine(layer, "bias", x.dtype),
                        _eps(layer))


@_channels_last
def _rms_norm(x, layer):
    return F.rms_norm(x, (x.shape[-1],), _affine(layer, "weight", x.dtype), _eps(layer))


@_channels_last
def _simple_norm(x, layer):
    # timm's definition (no torch op): LayerNorm without centring or bias, var with correction 1
    out = x * torch.rsqrt(torch.var(x, dim=-1, keepdim=True) + _eps(layer))
    w = _affine(layer, "weight", x.dtype)
    return out * w if w is not None else out


def _group_norm(x, layer, layout):
    return F.group_norm(x, layer.num_groups, _affine(layer, "weight", x.dtype), _affine(layer, "bias", x.dtype),
                        _eps(layer))


def _batch_norm(x, layer, layout):
    return F.batch_norm(x, layer.running_mean.to(x.dtype), layer.running_var.to(x.dtype),
                        _affine(layer, "weight", x.dtype), _affine(layer, "bias", x.dtype), False, 0.0, _eps(layer))


def _act(fn: Callable) -> Callable:
    return lambda x, layer, layout: fn(x)


def _prelu(x, layer, layout):
    return F.prelu(x, layer.weight.detach().to(x.dtype))


def _pool(kind: str) -> Callable:
    def reference(x, layer, layout):
        dims = (1, 2) if layout == "nhwc" else (2, 3)
        avg, mx = x.mean(dims), x.amax(dims)
        return {"avg": avg, "max": mx, "avgmax": 0.5 * (avg + mx), "catavgmax": torch.cat([avg, mx], dim=1),
                "identity": x}[kind]
    return reference


REFERENCES: dict[str, Callable] = {
    "layer_norm": _layer_norm, "rms_norm": _rms_norm, "simple_norm": _simple_norm, "group_norm": _group_norm,
    "batch_norm": _batch_norm,
    "gelu": _act(F.gelu), "gelu_tanh": _act(lambda x: F.gelu(x, approximate="tanh")),
    "quick_gelu": _act(lambda x: x * torch.sigmoid(1.702 * x)), "silu": _act(F.silu), "mish": _act(F.mish),
    "sigmoid": _act(torch.sigmoid), "tanh": _act(torch.tanh), "hard_sigmoid": _act(F.hardsigmoid),
    "hard_swish": _act(F.hardswish), "hard_mish": _act(lambda x: 0.5 * x * (x + 2).clamp(0, 2)), "prelu": _prelu,
    **{f"pool_{k}": _pool(v) for k, v in table.POOL_BY_NAME.items()},
}


# ---------------------------------------------------------------- discovery

def _layer_classes() -> list[tuple[str, type]]:
    """(module name, class) for every nn.Module subclass defined in a timm.layers module."""
    import timm.layers

    found = []
    for info in pkgutil.iter_modules(timm.layers.__path__, "timm.layers."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - an optional dependency missing: nothing to scan there
            continue
        for _, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == info.name:
                found.append((info.name, obj))
    return sorted(set(found), key=lambda t: (t[0], t[1].__qualname__))


def _registry_classes(getter_name: str, names) -> dict[type, str]:
    """class -> the first table name timm's registry getter resolves to it."""
    from timm import layers

    getter = getattr(layers, getter_name, None)
    out: dict[type, str] = {}
    for name in names:
        try:
            cls = getter(name) if getter is not None else None
        except Exception:  # noqa: BLE001 - a name this release does not have
            continue
        if inspect.isclass(cls):
            out.setdefault(cls, name)
    return out


def _norm_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _reads(cls: type, attribute: str) -> bool:
    """Whether a method the class (or a timm base) defines reads ``self.<attribute>``."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("timm"):
            continue
        for fn in vars(klass).values():
            code = getattr(fn, "__code__", None)
            if code is not None and attribute in code.co_names:
                return True
    return False


def _match(cls: type, module: str, norms: dict[type, str], acts: dict[type, str]) -> tuple[str, str] | None:
    """(kind, reference) for a class, or None where the table has no reference for it."""
    if _reads(cls, table.ATTENTION_SWITCH):
        return "attention", "attention"
    for base in cls.__mro__:  # the class itself, then its bases: RmsNormAct is an RmsNorm
        if base in norms:
            return "norm", table.NORM_BY_NAME[norms[base]]
        ref = table.NORM_BY_BASE.get(f"{base.__module__}.{base.__qualname__}")
        if ref is not None:
            return "norm", ref
    if module.startswith("timm.layers.activations"):
        key = _norm_name(re.sub(r"Me$", "", cls.__name__))
        for name, ref in table.ACT_BY_NAME.items():
            if _norm_name(name) == key:
                return "act", ref
    if cls in acts:
        return "act", table.ACT_BY_NAME[acts[cls]]
    if module == table.POOL_MODULE:
        return "pool", "pool"
    return None


def _pool_names() -> list[str]:
    from harness.models.capabilities import _module_source, literals

    return sorted(literals(_module_source(table.POOL_MODULE), ("pool_type",)) | {""})


def _pool_kind(name: str) -> str | None:
    stem = name[4:] if name.startswith("fast") else name
    stem = "avg" if stem == "" and name == "fast" else stem
    return next((k for k in sorted(table.POOL_BY_NAME, key=len, reverse=True) if stem == k), None)


def discover() -> tuple[list[LayerCase], list[str]]:
    """The layer cases of the importable timm, and the timm.layers classes with no
    reference in the table (for the report: what the family does not cover)."""
    from timm import layers

    classes = _layer_classes()
    norms = _registry_classes("get_norm_layer", table.NORM_BY_NAME)
    acts = _registry_classes("get_act_layer", table.ACT_BY_NAME)
    counts: dict[str, int] = {}
    for _, cls in classes:
        counts[cls.__name__] = counts.get(cls.__name__, 0) + 1
    cases, uncovered = [], []
    fast_norm = hasattr(layers, table.FAST_NORM_SWITCH)
    for module, cls in classes:
        name = cls.__name__ if counts[cls.__name__] == 1 else f"{cls.__name__}_{module.rsplit('.', 1)[-1]}"
        matched = _match(cls, module, norms, acts)
        if matched is None:
            uncovered.append(f"{module}.{cls.__qualname__}")
            continue
        kind, ref = matched
        path = f"{module}:{cls.__qualname__}"
        if kind == "norm":
            layout = "nchw" if ("2d" in cls.__name__.lower() or ref in ("group_norm", "batch_norm")) else "last"
            extra = (("apply_act", False),) if "apply_act" in _params(cls) else ()
            for variant in ("default", "fast_norm") if fast_norm and ref != "batch_norm" else ("default",):
                cases.append(LayerCase(name, path, kind, ref, variant, layout, extra))
        elif kind == "act":
            cases.append(LayerCase(name, path, kind, ref, "default"))
        elif kind == "attention":
            cases += [LayerCase(name, path, kind, ref, v) for v in ("fused_attn", "explicit")]
        elif "pool_type" in _params(cls):
            for pool in _pool_names():
                pk = _pool_kind(pool)
                if pk is not None:
                    cases.append(LayerCase(name, path, kind, f"pool_{pk}", pool or "identity", "nchw",
                                           (("pool_type", pool), ("flatten", True))))
        else:
            pk = next((k for k in sorted(table.POOL_BY_NAME, key=len, reverse=True)
                       if k and k in cls.__name__.lower()), None)
            if pk is None:
                uncovered.append(f"{module}.{cls.__qualname__}")
                continue
            flatten = (("flatten", True),) if "flatten" in _params(cls) else ()
            cases.append(LayerCase(name, path, kind, f"pool_{pk}", "default", "nchw", flatten))
    return cases, uncovered


def _params(cls: type) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return {}


# ---------------------------------------------------------------- running one case

class LayerSetupError(AssertionError):
    """The layer could not be built or run generically (reported as a failure: a layer
    the table covers must be checkable; the message says what to add)."""


@contextlib.contextmanager
def _fast_norm(enabled: bool):
    from timm import layers

    if not enabled:
        yield
        return
    before = layers.is_fast_norm() if hasattr(layers, "is_fast_norm") else False
    layers.set_fast_norm(True)
    try:
        yield
    finally:
        layers.set_fast_norm(before)


def build_layer(case: LayerCase) -> nn.Module:
    cls = case.layer_class()
    params = _params(cls)
    names = [n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
    kwargs = dict(case.kwargs)
    if case.kind in ("norm", "attention") and names:
        first = names[0]
        kwargs.setdefault(first, CHANNELS if case.kind == "norm" else 2 * CHANNELS)
    if "num_heads" in params:
        kwargs.setdefault("num_heads", HEADS)
    if case.kind == "norm" and "num_groups" in params:
        kwargs.setdefault("num_groups", HEADS)
    try:
        with _fast_norm(case.variant == "fast_norm"):
            layer = cls(**kwargs)
    except Exception as exc:
        raise LayerSetupError(f"{case.path}(**{kwargs}) raised {type(exc).__name__}: {exc}") from exc
    fill_deterministic(layer, f"layer:{case.path}")
    return layer.eval()


def make_input(case: LayerCase, shape: tuple[int, ...]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed_for("layer-input", case.path, case.variant, str(shape)))
    return torch.randn(shape, generator=gen) * 2.0 + 0.5


def _input_shape(case: LayerCase, layer: nn.Module) -> list[tuple[int, ...]]:
    """Candidate input shapes in order (the first a meta forward accepts is used)."""
    c = CHANNELS if case.kind != "attention" else 2 * CHANNELS
    if case.kind == "attention":
        return [(2, TOKENS, c), (2, c, *SPATIAL)]
    if case.layout == "nchw":
        return [(2, c, *SPATIAL)]
    return [(2, TOKENS, c)]


def _set_fused(layer: nn.Module, fused: bool) -> None:
    for m in layer.modules():
        if hasattr(m, table.ATTENTION_SWITCH):
            setattr(m, table.ATTENTION_SWITCH, fused)


@dataclass
class LayerResult:
    max_abs: float
    budget: float
    err32: float
    notes: list[str] = field(default_factory=list)


def _run(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = layer(x)
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out


def _pick_input(case: LayerCase, layer: nn.Module) -> torch.Tensor:
    errors = []
    for shape in _input_shape(case, layer):
        x = make_input(case, shape)
        try:
            _run(layer, x)
            return x
        except Exception as exc:  # noqa: BLE001 - tried in order; all failing is reported below
            errors.append(f"{shape}: {type(exc).__name__}: {exc}"[:200])
    raise LayerSetupError(f"{case.id}: the layer ran on none of the input shapes tried ({'; '.join(errors)})")


def check_layer(case: LayerCase) -> LayerResult:
    """Compare one layer with its reference. Raises AssertionError with the numbers."""
    layer = build_layer(case)
    if case.kind == "attention":
        return _check_attention(case, layer)
    x = _pick_input(case, layer)
    out32 = _run(layer, x)
    reference = REFERENCES[case.reference]
    layout = case.layout
    ref64 = reference(x.double(), _double(layer), layout)
    ref32 = reference(x, layer, layout)
    err32 = max_abs_error(ref32.flatten(1), ref64.flatten(1))
    return _judge(case, out32, ref64, err32, f"{case.reference} (torch, float64)")


def _double(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer).double()


def _check_attention(case: LayerCase, layer: nn.Module) -> LayerResult:
    fused = case.variant == "fused_attn"
    x = _pick_input(case, layer)
    _set_fused(layer, fused)
    out32 = _run(layer, x)
    own64 = _double(layer)
    err32 = max_abs_error(out32, _run(own64, x.double()))
    other64 = _double(layer)
    _set_fused(other64, not fused)
    ref64 = _run(other64, x.double())
    other = "the explicit softmax(q k^T) v path" if fused else "F.scaled_dot_product_attention (fused_attn)"
    return _judge(case, out32, ref64, err32, f"{other} in float64")


def _judge(case: LayerCase, out32: torch.Tensor, ref64: torch.Tensor, err32: float, what: str) -> LayerResult:
    if case.kind == "pool":  # pooled to (B, C) or (B, C, 1, 1), flattened or not: compare values
        out32, ref64 = out32.flatten(1), ref64.flatten(1)
    if tuple(out32.shape) != tuple(ref64.shape):
        raise AssertionError(f"{case.id}: output shape {tuple(out32.shape)}, reference {what} {tuple(ref64.shape)}")
    magnitude = ref64.abs().max().item()
    budget = error_budget(LAYERS, err32, magnitude)
    err = max_abs_error(out32, ref64)
    if not err <= budget:
        rel = err / max(magnitude, 1e-30)
        raise AssertionError(f"{case.id} differs from {what}: max abs err {err:.3g} ({rel:.2%} of max|ref| "
                             f"{magnitude:.3g}); budget {describe_budget(LAYERS, err32, budget)}")
    return LayerResult(err, budget, err32)
