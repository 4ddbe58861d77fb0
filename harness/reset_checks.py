"""reset_classifier round trips: shapes, pooling kept, pre-logits unchanged.

Each step starts from a fresh copy of the configured model, so one step's change of pool
type (which may legitimately remove an attention pool) never leaks into the next.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from harness import build, compare, heads
from harness.weights import BATCH_SIZE, fill_deterministic, make_input


@dataclass
class ResetSubject:
    """A configured model plus what it looked like before any reset."""

    model_name: str
    model: nn.Module
    device: str
    input_size: tuple
    x: torch.Tensor
    num_classes: int
    pool: str | None
    signature: dict[str, str]
    pre_logits: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def numeric(self) -> bool:
        return self.device != "meta"


def make_subject(model_name: str, device: str, input_size, config: dict) -> ResetSubject:
    model = build.create(model_name, device=device, **config)
    if device != "meta":
        fill_deterministic(model, model_name)
    x = (torch.empty((BATCH_SIZE, *input_size), device="meta") if device == "meta"
         else make_input(model_name, input_size, device=device))
    subject = ResetSubject(model_name, model, device, tuple(input_size), x, model.num_classes,
                           heads.current_pool_type(model), heads.pool_signature(model))
    if subject.numeric and heads.supports_pre_logits(model):
        with torch.no_grad():
            subject.pre_logits = heads.pre_logits(model, x)
    return subject


def _forward_shape(subject: ResetSubject, model: nn.Module):
    if subject.numeric:
        with torch.no_grad():
            out = model(subject.x)
        return tuple(out.shape), out
    shape = build.meta_forward_shape(model, subject.input_size)
    return (None, None) if isinstance(shape, Exception) else (shape, None)


def _call_reset(model: nn.Module, what: str, *args) -> None:
    try:
        model.reset_classifier(*args)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def apply_resets(subject: ResetSubject, calls: list[tuple], keeps_pool: bool) -> None:
    """Apply reset_classifier(*args) for each call on a fresh copy, then assert the final
    state: output shape, pooling configuration kept (when the last call keeps the pool
    type), and pre-logits unchanged."""
    model = copy.deepcopy(subject.model)
    what = " then ".join(f"reset_classifier({', '.join(map(repr, c))})" for c in calls)
    for args in calls:
        _call_reset(model, what, *args)
    num_classes = calls[-1][0]
    if model.num_classes != num_classes:
        raise AssertionError(f"after {what}: model.num_classes is {model.num_classes}, expected {num_classes}")
    if keeps_pool:
        changed = heads.diff_signatures(subject.signature, heads.pool_signature(model))
        if changed:
            raise AssertionError(f"after {what}: pooling configuration changed:\n  " + "\n  ".join(changed))
    shape, out = _forward_shape(subject, model)
    pool = calls[-1][1] if len(calls[-1]) > 1 else subject.pool
    if shape is not None:
        if pool == "":
            if len(shape) < 3:
                raise AssertionError(f"after {what}: output shape {shape} is pooled, expected unpooled features")
        elif num_classes > 0:
            compare.assert_shape(shape, (BATCH_SIZE, num_classes), f"after {what}: output")
        elif len(shape) != 2 or (keeps_pool and shape[1] not in heads.feature_dims(model)):
            raise AssertionError(f"after {what}: output shape {shape}, expected (B, num_features) "
                                 f"with num_features in {sorted(heads.feature_dims(model))}")
    if out is not None:
        compare.assert_finite(out, f"after {what}: output")
    if keeps_pool and subject.pre_logits is not None:
        with torch.no_grad():
            after = heads.pre_logits(model, subject.x)
        compare.assert_close(after, subject.pre_logits, f"after {what}: pre-logits features")
