"""Meta-device answers for the torch functions whose meta kernels are slow Python
decompositions, so building and running models on the meta device (discovery probes, facts,
structural checks over --max-params, fingerprint traces) costs what the model's own Python
costs, not torch's meta kernels.

On the meta device a tensor has no values: an in-place init (``normal_``, ``clamp_``,
``erfinv_``, the parts of ``trunc_normal_``) leaves only its shape, which it does not change,
and an out-of-place op (``layer_norm``, ``gelu``, ``batch_norm``, ``scaled_dot_product_attention``)
gives a tensor of a shape its arguments determine. Each answer gives exactly that, or None
where the arguments do not fit, and then torch's own function runs and raises as it would.
Off the meta device torch's own function always runs. Only inside ``fast_meta_ops()``: the
wrappers are never left installed where TorchScript or FX could meet them.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.nn import functional as F


def _batch_norm_shape(input, running_mean=None, running_var=None, weight=None, bias=None, *args, **kwargs):
    fits = all(t is None or t.shape == (input.shape[1],) for t in (running_mean, running_var, weight, bias))
    return torch.empty_like(input) if input.dim() >= 2 and fits else None


def _layer_norm_shape(input, normalized_shape, weight=None, bias=None, *args, **kwargs):
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    fits = tuple(input.shape[-len(shape):]) == shape and all(t is None or tuple(t.shape) == shape for t in (weight, bias))
    return torch.empty_like(input) if fits else None


def _attention_shape(query, key, value, *args, **kwargs):
    fits = query.dim() == key.dim() == value.dim() >= 2 and query.shape[-1] == key.shape[-1] \
        and key.shape[-2] == value.shape[-2]
    return torch.empty((*query.shape[:-1], value.shape[-1]), dtype=query.dtype, device="meta") if fits else None


def _same(input, *args, **kwargs):
    return torch.empty_like(input)


def _in_place(tensor, *args, **kwargs):
    return tensor


# (owner, attribute, answer): torch functions whose meta implementation is a Python
# decomposition costing milliseconds a call (clamp_ 3 ms, sdpa 3.6 ms, layer_norm 2.3 ms,
# gelu 1.6 ms, batch_norm 5 ms, against 0.01-0.05 ms for a matmul), most of a meta build
# (trunc_normal_ is uniform_/erfinv_/mul_/add_/clamp_) and of a meta forward. The answer
# gives the result from the arguments (a new empty tensor of its shape, or the tensor itself
# for an in-place method), or None where they do not fit, and then the real function runs,
# so a model that fails there still fails.
META_SHORTCUTS = (
    (F, "batch_norm", _batch_norm_shape),
    (F, "layer_norm", _layer_norm_shape),
    (F, "gelu", _same),
    (F, "scaled_dot_product_attention", _attention_shape),
    (torch.Tensor, "clamp_", _in_place),
    (torch.Tensor, "normal_", _in_place),
    (torch.Tensor, "erfinv_", _in_place),
)


def _shortcut(original, answer):
    @functools.wraps(original)
    def call(*args, **kwargs):
        if args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            result = answer(*args, **kwargs)
            if result is not None:
                return result
        return original(*args, **kwargs)
    return call


_depth = 0  # nested fast_meta_ops() (a meta build inside a trace) install once


@contextlib.contextmanager
def fast_meta_ops():
    """META_SHORTCUTS installed for the duration (re-entrant). Measured on five smoke
    models' fingerprint traces: the same timm functions recorded, a third of the time."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in META_SHORTCUTS]
    _depth = 1
    try:
        for (owner, name, original), (_, _, answer) in zip(saved, META_SHORTCUTS):
            setattr(owner, name, _shortcut(original, answer))
        yield
    finally:
        _depth = 0
        for owner, name, original in saved:
            setattr(owner, name, original)
