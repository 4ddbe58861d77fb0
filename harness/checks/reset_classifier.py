"""reset_classifier round trips: shapes, pooling kept, pre-logits unchanged.

Each step starts from a fresh copy of the configured model, so one step's change of pool
type (which may legitimately remove an attention pool) never leaks into the next.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness.checks import compare
from harness.models import build, heads
from harness.registry.model_families import ModelFamily
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input


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
    if device != "meta" and not config:  # the default build is shared with the other checks
        model = model_cache.deterministic(model_name, device)
    else:
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


def _forward(subject: ResetSubject, model: nn.Module) -> tuple[list[tuple], list[torch.Tensor]]:
    """Output shapes and tensors, one per branch of a multi-branch output; both empty
    where a meta-device model cannot run (its structure was still checked)."""
    if subject.numeric:
        with torch.no_grad():
            out = model(subject.x)
    else:
        out = build.meta_forward(model, subject.x)
        if out is None:
            return [], []
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [tuple(o.shape) for o in outs], outs


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
    done: list[str] = []
    for args in calls:
        done.append(f"reset_classifier({', '.join(map(repr, args))})")
        what = " then ".join(done)
        _call_reset(model, what, *args)
        if keeps_pool:  # checked after every step, so the message names the step that broke it
            changed = heads.diff_signatures(subject.signature, heads.pool_signature(model))
            if changed:
                raise AssertionError(f"after {what}: pooling configuration changed:\n  " + "\n  ".join(changed))
    num_classes = calls[-1][0]
    if model.num_classes != num_classes:
        raise AssertionError(f"after {what}: model.num_classes is {model.num_classes}, expected {num_classes}")
    shapes, outs = _forward(subject, model)
    pool = calls[-1][1] if len(calls[-1]) > 1 else subject.pool
    if pool == "":
        pooled = [s for s in shapes if len(s) < 3]
        if pooled:
            raise AssertionError(f"after {what}: output shapes {shapes} are pooled, expected unpooled features")
    elif shapes and len(shapes) != 1:
        raise AssertionError(f"after {what}: {len(shapes)} outputs {shapes}, expected one tensor")
    elif shapes and num_classes > 0:
        compare.assert_shape(shapes[0], (BATCH_SIZE, num_classes), f"after {what}: output")
    elif shapes and (len(shapes[0]) != 2 or (keeps_pool and shapes[0][1] not in heads.feature_dims(model))):
        raise AssertionError(f"after {what}: output shape {shapes[0]}, expected (B, num_features) "
                             f"with num_features in {sorted(heads.feature_dims(model))}")
    for out in outs:
        compare.assert_finite(out, f"after {what}: output")
    if keeps_pool and subject.pre_logits is not None:
        with torch.no_grad():
            after = heads.pre_logits(model, subject.x)
        compare.assert_close(after, subject.pre_logits, f"after {what}: pre-logits features")


def reset_plan(num_classes: int, pool: str | None,
               family: ModelFamily) -> tuple[list[tuple[list[tuple], bool]], list[str]]:
    """What check_reset_classifier calls: the fixed sequences of reset_classifier(*args)
    calls, each with whether it keeps the pool type, and the pools the (N, pool) calls draw
    from. The fingerprints (harness.checks.exercise) run the same plan."""
    plan: list[tuple[list[tuple], bool]] = [([(0,)], True), ([(num_classes + 3,)], True)]
    if pool is not None:
        plan += [([(0, pool), (num_classes, pool)], True), ([(0,), (num_classes,)], True)]
    pools = sorted(set(family.pool_types or ()) | ({pool} if pool is not None else set()))
    tail = [([(0, "")], False)] if family.pool_types is not None and family.unpooled_features else []
    return plan + tail, pools


def check_reset_classifier(subject: ResetSubject, family: ModelFamily, max_examples: int = 6) -> None:
    """The whole reset_classifier contract for one configured model: (0), (N), the round
    trip back to the original head, (N, pool) for hypothesis-chosen N and pools, and
    (0, '') for unpooled features."""
    s = subject
    plan, pools = reset_plan(s.num_classes, s.pool, family)
    fixed, tail = [p for p in plan if p[0] != [(0, "")]], [p for p in plan if p[0] == [(0, "")]]
    for calls, keeps_pool in fixed:
        apply_resets(s, calls, keeps_pool=keeps_pool)
    if pools:
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None)
        @given(n=st.integers(min_value=1, max_value=1000), pool=st.sampled_from(pools))
        def reset_with_pool(n: int, pool: str) -> None:
            apply_resets(s, [(n, pool)], keeps_pool=pool == s.pool)

        reset_with_pool()
    for calls, keeps_pool in tail:
        apply_resets(s, calls, keeps_pool=keeps_pool)
