"""The deterministic model of each (model, device), built once per worker and handed out
as copies to every check that starts from it (the pretrained source checkpoint, the
default reset_classifier subject, the reparam check): with ``--group-models`` a
model's tests run back to back on one worker, so it is built once, not once per check.

Building skips timm's *random* weight init (``skip_init``): every floating-point parameter
and BN statistic is overwritten by ``fill_deterministic`` anyway, so the draws are wasted
work. A skipped init must never make the harness fail, nor change a result, so the fast
build is checked for every model as it is made (``build_deterministic``):

- each skipped function is replaced by a pass-through with the function's own signature
  (timm calls ``init_weight_vit(module=..., name=...)`` by keyword through named_apply);
- what it was called on is recorded and poisoned with NaN;
- the build is kept only if every recorded tensor is (a view of) a tensor that
  ``fill_deterministic`` then overwrites, and no other tensor of the model (buffers,
  non-persistent buffers, plain tensor attributes) holds a NaN, i.e. no value the
  constructor derived from a skipped init survives.

Otherwise, or if the fast build raises, the model is built plainly (create +
``fill_deterministic``), and ``fallbacks`` says why. Constant inits (zeros_, ones_,
constant_, eye_, dirac_) are cheap and may set buffers, so they always run.
Building on the meta device and materialising with ``to_empty`` would be faster still, but
loses the buffers constructors compute, so it is not used for numeric checks.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
from typing import Any, Callable

import torch
from torch import nn

from harness.models import build
from harness.weights.deterministic import fill_deterministic, is_filled

# the random init functions of torch.nn.init and timm.layers.weight_init (timm's
# init_weight_vit / init_weight_jax call these, looked up in their module, so they are covered)
_TORCH_INITS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                "kaiming_normal_", "orthogonal_", "sparse_")
_TIMM_INITS = ("trunc_normal_", "trunc_normal_tf_", "variance_scaling_", "lecun_normal_")

_cache: dict[tuple[str, str], nn.Module] = {}
stats = {"hits": 0, "builds": 0, "fallbacks": 0}
fallbacks: dict[str, str] = {}  # model -> why the fast build was not used


def _pass_through(fn: Callable, touched: list) -> Callable:
    """A stand-in for an init function with its signature: records the tensor (or module)
    it was given, poisons it with NaN and returns it, as the in-place init would."""
    signature = inspect.signature(fn)
    first = next(iter(signature.parameters))

    @functools.wraps(fn)
    def skipped(*args: Any, **kwargs: Any):
        target = signature.bind(*args, **kwargs).arguments[first]
        tensors = list(target.parameters()) + list(target.buffers()) if isinstance(target, nn.Module) else [target]
        for t in tensors:
            if isinstance(t, torch.Tensor):
                touched.append(t)
                if t.is_floating_point() and not t.is_meta:
                    with torch.no_grad():
                        t.fill_(float("nan"))
        return target
    return skipped


@contextlib.contextmanager
def skip_init():
    """Replace the random init functions by recording pass-throughs while a model is
    constructed, in torch.nn.init and in every timm module that imported them by name.
    Yields the list of tensors they were called on."""
    originals = {getattr(nn.init, n) for n in _TORCH_INITS if hasattr(nn.init, n)}
    try:
        from timm.layers import weight_init
        originals |= {getattr(weight_init, n) for n in _TIMM_INITS if hasattr(weight_init, n)}
    except ImportError:
        pass
    touched: list[torch.Tensor] = []
    stand_ins = {fn: _pass_through(fn, touched) for fn in originals}
    patched = []
    modules = [nn.init] + [m for name, m in list(sys.modules.items()) if name.startswith("timm") and m is not None]
    for module in modules:
        for attr, value in list(vars(module).items()):
            if callable(value) and value in stand_ins:
                patched.append((module, attr, value))
                setattr(module, attr, stand_ins[value])
    try:
        yield touched
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _unfilled_tensors(model: nn.Module, filled: set[str]):
    """(name, tensor) of every tensor the model holds that fill_deterministic leaves as the
    constructor made it: buffers (persistent or not) and plain tensor attributes."""
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        for name, buf in module._buffers.items():
            if buf is not None and prefix + name not in filled:
                yield prefix + name, buf
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor):
                yield prefix + attr, value


def fast_build_problem(model: nn.Module, touched: list[torch.Tensor]) -> str | None:
    """Why this fast build may differ from a plain one (None: it cannot): a skipped init
    touched a tensor fill_deterministic does not overwrite, or a NaN it planted survives."""
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    state = model.state_dict(keep_vars=True)
    filled = {k for k, t in state.items() if is_filled(k, t, params)}
    filled_storages = {_storage(state[k]) for k in filled}
    stray = [t for t in touched if t.numel() and _storage(t) not in filled_storages]
    if stray:
        shapes = ", ".join(str(tuple(t.shape)) for t in stray[:4])
        return f"a skipped init touched {len(stray)} tensor(s) fill_deterministic does not overwrite ({shapes})"
    nan = sorted({k for k, t in _unfilled_tensors(model, filled) if t.is_floating_point() and torch.isnan(t).any()})
    if nan:
        return f"values derived from a skipped init survive in {', '.join(nan[:4])}"
    return None


def build_deterministic(model_name: str, device: str = "cpu", **kwargs: Any) -> nn.Module:
    """create(**kwargs) on the device with the random inits skipped, then fill_deterministic;
    the plain create + fill_deterministic wherever the fast build is not provably the same."""
    try:
        with skip_init() as touched:
            model = build.create(model_name, device=device, **kwargs)
        problem = fast_build_problem(model, touched)
    except Exception as exc:  # noqa: BLE001 - the plain build below raises the real error, if any
        model, problem = None, f"the fast build raised {type(exc).__name__}: {exc}"[:300]
    if problem is None:
        return fill_deterministic(model, model_name)
    del model
    stats["fallbacks"] += 1
    fallbacks[model_name] = problem
    return fill_deterministic(build.create(model_name, device=device, **kwargs), model_name)


def deterministic(model_name: str, device: str = "cpu") -> nn.Module:
    """A private copy of the model's deterministic default-config build. One model is
    kept per worker (the last one asked for), so memory holds one model at a time."""
    key = (model_name, str(device))
    if key not in _cache:
        _cache.clear()
        _cache[key] = build_deterministic(model_name, device)
        stats["builds"] += 1
    else:
        stats["hits"] += 1
    return copy.deepcopy(_cache[key])


def clear() -> None:
    _cache.clear()


@torch.no_grad()
def same_state(a: nn.Module, b: nn.Module) -> list[str]:
    """Keys whose tensors differ (bitwise) between two models' state_dicts."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return sorted(set(sa) ^ set(sb))
    return [k for k in sa if sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k])]
