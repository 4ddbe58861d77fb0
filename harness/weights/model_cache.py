"""The deterministic model of each (model, device), built once per worker and handed out
as copies to every check that starts from it (the pretrained source checkpoint, the
default reset_classifier subject, the reparam check): with ``--group-models`` a
model's tests run back to back on one worker, so it is built once, not once per check.

Building skips timm's weight init (``skip_init``): every floating-point parameter and BN
statistic is overwritten by ``fill_deterministic`` anyway, so the result is bitwise the
same (tests/test_model_cache.py checks it) and the init's random draws are saved.
Constant buffers the constructors compute (position tables, indices) are computed as
usual. Building on the meta device and materialising with ``to_empty`` would be faster
still, but loses those computed buffers, so it is not used for numeric checks.
"""
from __future__ import annotations

import contextlib
import copy
import sys

import torch
from torch import nn

from harness.models import build
from harness.weights.deterministic import fill_deterministic

# torch.nn.init functions timm's constructors and init_weights call, and timm's own
_TORCH_INITS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                "sparse_")
_TIMM_INITS = ("trunc_normal_", "trunc_normal_tf_", "variance_scaling_", "lecun_normal_", "init_weight_vit",
               "init_weight_jax")

_cache: dict[tuple[str, str], nn.Module] = {}
stats = {"hits": 0, "builds": 0}


def _noop(*args, **kwargs):
    """An init function that does nothing (timm calls some with the tensor as a keyword, e.g.
    Hiera's ``trunc_normal_(tensor=..., std=...)``)."""
    return args[0] if args else kwargs.get("tensor")


@contextlib.contextmanager
def skip_init():
    """Make the init functions no-ops while a model is constructed, in torch.nn.init and
    in every timm module that imported them by name."""
    originals = {getattr(nn.init, n) for n in _TORCH_INITS if hasattr(nn.init, n)}
    try:
        from timm.layers import weight_init
        originals |= {getattr(weight_init, n) for n in _TIMM_INITS if hasattr(weight_init, n)}
    except ImportError:
        pass
    patched = []
    modules = [nn.init] + [m for name, m in list(sys.modules.items()) if name.startswith("timm") and m is not None]
    for module in modules:
        for attr, value in list(vars(module).items()):
            if callable(value) and value in originals:
                patched.append((module, attr, value))
                setattr(module, attr, _noop)
    try:
        yield
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)


def build_deterministic(model_name: str, device: str = "cpu") -> nn.Module:
    """create() on the device, timm's init skipped, then fill_deterministic."""
    with skip_init():
        model = build.create(model_name, device=device)
    return fill_deterministic(model, model_name)


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
