"""reset_classifier round trips: shapes, pooling kept, pre-logits unchanged, and for every
discovered pool Q: ``(N, Q)`` switches to Q (the pooling then looks as if the model had been
built with ``global_pool=Q``) and the round trip back restores the original pool.

Each step starts from the configured model as it was, so one step's change of pool type
(which may legitimately remove an attention pool) never leaks into the next. The steps run on
the subject's own model, put back before each (``fresh_copy``: every module's attributes
restored from a snapshot, harness.models.module_state), not on copies: a model's 18 reset
configs take about 20 steps each, and a deep copy per step was two thirds of the family's
time. The check then proves no step wrote into the tensors or left state that restoring
cannot undo, and otherwise runs again on deep copies, so reusing the model never changes a
result.
"""
from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass, field
from typing import Callable

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness.checks import compare
from harness.models import build, heads
from harness.models.module_state import ModuleSnapshot
from harness.registry.model_families import ModelFamily
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input


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
    features: object = None       # forward_features(x): a reset never changes it, so heads reuse it
    full_checked: bool = False    # model(x) == forward_head(features) confirmed once
    in_place: bool = True         # steps run on the model itself, restored before each (proved harmless after)
    snapshot: ModuleSnapshot | None = None

    @property
    def numeric(self) -> bool:
        return self.device != "meta"


def make_subject(model_name: str, device: str, input_size, config: dict) -> ResetSubject:
    if device != "meta" and not config:  # the default build is shared with the other checks
        model = model_cache.deterministic(model_name, device)
    elif device != "meta":
        model = model_cache.build_deterministic(model_name, device, **config)
    else:
        model = build.create(model_name, device=device, **config)
    x = (torch.empty((BATCH_SIZE, *input_size), device="meta") if device == "meta"
         else make_input(model_name, input_size, device=device))
    subject = ResetSubject(model_name, model, device, tuple(input_size), x, model.num_classes,
                           heads.current_pool_type(model), heads.pool_signature(model))
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        if subject.numeric:
            with torch.no_grad():
                subject.features = model.forward_features(x)
        else:
            subject.features = build.meta_forward(model.forward_features, x)
    if subject.numeric and heads.supports_pre_logits(model):
        subject.pre_logits = _pre_logits(subject, model)
    return subject


def fresh_copy(subject: ResetSubject) -> nn.Module:
    """The configured model for one step: the subject's own model with every module's
    attributes put back as they were before the first step (a reset replaces head modules
    and sets attributes), or a deep copy where ``in_place`` is off. A step that writes into a
    tensor, or leaves state restoring cannot undo, is caught by check_reset_classifier
    (_left_behind), which then runs the check again on deep copies."""
    if not subject.in_place:
        return copy.deepcopy(subject.model)
    if subject.snapshot is None:
        subject.snapshot = ModuleSnapshot(subject.model)
    return subject.snapshot.restore()


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, non-persistent buffers included (the steps write those too)."""
    return {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}


def _tensors_written(model: nn.Module, pristine: nn.Module) -> list[str]:
    """The parameters and buffers of ``model`` that differ from ``pristine`` (a deep copy taken
    before any step) in presence, shape, dtype, requires_grad or value (NaN equal to NaN;
    values not compared on the meta device, which has none)."""
    now, before = _tensors(model), _tensors(pristine)
    written = list(set(now) ^ set(before))
    for key in set(now) & set(before):
        a, b = now[key], before[key]
        if (a.shape, a.dtype, a.requires_grad) != (b.shape, b.dtype, b.requires_grad):
            written.append(key)
        elif not a.is_meta and not torch.equal(a, b) and not _equal_with_nan(a, b):
            written.append(key)
    return sorted(written)


def _equal_with_nan(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def _clone(features):
    return [f.clone() for f in features] if isinstance(features, (list, tuple)) else features.clone()


def _pre_logits(subject: ResetSubject, model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        if subject.features is None:
            return heads.pre_logits(model, subject.x)
        return model.forward_head(_clone(subject.features), pre_logits=True)


def _forward(subject: ResetSubject, model: nn.Module, what: str) -> tuple[list[tuple], list[torch.Tensor]]:
    """_run_forward, with an exception named after the resets that preceded it."""
    try:
        return _run_forward(subject, model)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"after {what}: the forward raised {type(exc).__name__}: {exc}") from exc


def _run_forward(subject: ResetSubject, model: nn.Module) -> tuple[list[tuple], list[torch.Tensor]]:
    """Output shapes and tensors, one per branch of a multi-branch output; both empty
    where a meta-device model cannot run (its structure was still checked). The head runs
    on the subject's cached features; the first call also runs the whole model(x) and
    requires the same output, so reusing the features hides nothing."""
    with torch.no_grad():
        if subject.features is not None and not subject.numeric:
            out = build.meta_forward(lambda f: model.forward_head(_clone(f)), subject.features)
            if out is None:
                return [], []
        elif subject.features is not None:
            out = model.forward_head(_clone(subject.features))
            if not subject.full_checked:
                subject.full_checked = True
                for i, (a, b) in enumerate(zip(_as_list(model(subject.x)), _as_list(out))):
                    compare.assert_close(b, a, f"forward_head(forward_features(x)) vs model(x), output {i}")
        elif subject.numeric:
            out = model(subject.x)
        else:
            out = build.meta_forward(model, subject.x)
            if out is None:
                return [], []
    outs = _as_list(out)
    return [tuple(o.shape) for o in outs], outs


def _as_list(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out] if out is not None else []


def _device_of(model: nn.Module):
    """The meta device context for a meta-device model (so a head reset_classifier builds is
    on meta too, else the meta forward meets a CPU head and fails), else nothing."""
    on_meta = any(t.is_meta for t in model.parameters())
    return torch.device("meta") if on_meta else contextlib.nullcontext()


def _call_reset(model: nn.Module, what: str, *args) -> None:
    try:
        with _device_of(model):
            model.reset_classifier(*args)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def apply_resets(subject: ResetSubject, calls: list[tuple], keeps_pool: bool) -> str:
    """Apply reset_classifier(*args) for each call on a fresh copy, then assert the final
    state: output shape, pooling configuration kept (when the last call keeps the pool
    type), and pre-logits unchanged. Returns what was applied ('reset_classifier(0) then ...')."""
    model = fresh_copy(subject)
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
    shapes, outs = _forward(subject, model, what)
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
        compare.assert_close(_pre_logits(subject, model), subject.pre_logits, f"after {what}: pre-logits features")
    return what


@dataclass(frozen=True)
class ResetPlan:
    """What check_reset_classifier does for one configured model, the one place that decides
    it (the fingerprints in harness.checks.exercise run the same calls without assertions):

    - ``fixed``: call sequences that keep the pool type, asserted by apply_resets;
    - ``switches``: every other pool Q, (N, Q) then back (switch_pools);
    - ``unpooled``: (0, '') gives unpooled features.

    Where ``pool`` is not None the check also resets with (N, pool) for hypothesis-chosen N;
    ``sequences()`` stands for those with one N."""

    num_classes: int
    pool: str | None
    fixed: tuple[tuple[tuple, ...], ...]
    switches: tuple[str, ...]
    unpooled: bool

    @property
    def switch_classes(self) -> int:
        return self.num_classes + 5

    def sequences(self) -> list[tuple[list[tuple], bool]]:
        """Every call sequence with whether it keeps the pool type (one N stands for the
        hypothesis-chosen ones)."""
        n, pool = self.switch_classes, self.pool
        out = [(list(calls), True) for calls in self.fixed]
        if pool is not None:
            out.append(([(n, pool)], True))
        out += [([(n, q)] + ([(self.num_classes, pool)] if pool is not None else []), False) for q in self.switches]
        if self.unpooled:
            out.append(([(0, "")], False))
        return out


def reset_plan(num_classes: int, pool: str | None, family: ModelFamily, pools: tuple[str, ...] | None = None,
               unpooled: bool | None = None) -> ResetPlan:
    """The plan for a model with ``num_classes`` and pool type ``pool``: ``pools`` are its
    discovered pools (the family's extra pool types are added); ``unpooled`` whether unpooled
    features are a capability (None: wherever any pool is known), and only where the family
    has them."""
    fixed: list[tuple[tuple, ...]] = [((0,),), ((num_classes + 3,),)]
    if pool is not None:
        fixed += [((0, pool), (num_classes, pool)), ((0,), (num_classes,))]
    switches = tuple(q for q in sorted(set(pools or ()) | set(family.pool_types or ())) if q != pool)
    if unpooled is None:
        unpooled = pools is not None or family.pool_types is not None
    return ResetPlan(num_classes, pool, tuple(fixed), switches, bool(unpooled and family.unpooled_features))


def _raises_rejection(model: nn.Module, *args) -> str | None:
    """The message when reset_classifier(*args) refuses (the way timm refuses to add an
    attention pool), else None; any other exception fails the check."""
    try:
        with _device_of(model):
            model.reset_classifier(*args)
    except AssertionError as exc:
        return str(exc) or "AssertionError"
    except Exception as exc:
        raise AssertionError(f"reset_classifier({', '.join(map(repr, args))}) raised "
                             f"{type(exc).__name__}: {exc}") from exc
    return None


def switch_pools(subject: ResetSubject, pools: list[str], n: int,
                 signature_of: Callable[[str], dict | None]) -> None:
    """For each pool Q other than the subject's: reset_classifier(n, Q) gives Q with the
    pooling of a model built with global_pool=Q (``signature_of(Q)``, None where that is not
    known), and reset_classifier(num_classes, P) back gives the original pooling and
    pre-logits. A reset that refuses to *add* an attention pool is accepted for that step
    and named in the subject's notes, and so is one whose pool needs other weights than the
    model has (pool_needs_other_weights): a head reset cannot make those."""
    s = subject
    for q in pools:
        if q == s.pool:
            continue
        model = fresh_copy(s)
        what = f"reset_classifier({n}, {q!r})"
        refused = _raises_rejection(model, n, q)
        if refused is not None:
            expected = signature_of(q)
            adds_attention = expected is None or any("attn_pool" in k or "AttentionPool" in v
                                                     for k, v in expected.items())
            reshapes = "" if adds_attention else pool_needs_other_weights(s.model_name, s.pool, q)
            if not (adds_attention or reshapes):
                raise AssertionError(f"{what} refused a pool the constructor accepts: {refused}")
            s.notes.append(f"{what} refused ({'adds an attention pool' if adds_attention else reshapes}): {refused}")
            continue
        if heads.current_pool_type(model) is not None and heads.current_pool_type(model) != q:
            raise AssertionError(f"after {what}: pool type is {heads.current_pool_type(model)!r}, expected {q!r}")
        expected = signature_of(q)
        if expected is not None:
            changed = heads.diff_signatures(expected, heads.pool_signature(model))
            if changed:
                raise AssertionError(f"after {what}: pooling differs from create_model(global_pool={q!r}):\n  "
                                     + "\n  ".join(changed))
        _assert_output(s, model, what, n, q)
        if s.pool is None:
            continue
        back = f"{what} then reset_classifier({s.num_classes}, {s.pool!r})"
        refused = _raises_rejection(model, s.num_classes, s.pool)
        if refused is not None:
            if "attn_pool" in s.signature and s.signature["attn_pool"] != "None":
                s.notes.append(f"{back} refused (the attention pool was removed): {refused}")
                continue
            raise AssertionError(f"{back} raised AssertionError: {refused}")
        changed = heads.diff_signatures(s.signature, heads.pool_signature(model))
        if changed:
            raise AssertionError(f"after {back}: pooling configuration not restored:\n  " + "\n  ".join(changed))
        if model.num_classes != s.num_classes:
            raise AssertionError(f"after {back}: model.num_classes is {model.num_classes}, expected {s.num_classes}")
        if s.pre_logits is not None:
            compare.assert_close(_pre_logits(s, model), s.pre_logits, f"after {back}: pre-logits features")


def _assert_output(subject: ResetSubject, model: nn.Module, what: str, n: int, pool: str) -> None:
    shapes, outs = _forward(subject, model, what)
    if shapes and pool != "":
        if len(shapes) != 1:
            raise AssertionError(f"after {what}: {len(shapes)} outputs {shapes}, expected one tensor")
        compare.assert_shape(shapes[0], (BATCH_SIZE, n), f"after {what}: output")
    for out in outs:
        compare.assert_finite(out, f"after {what}: output")


@functools.lru_cache(maxsize=256)
def _headless_shapes(model_name: str, pool: str | None) -> tuple | None:
    kwargs = {} if pool is None else {"global_pool": pool}
    try:
        model = build.create(model_name, device="meta", num_classes=0, **kwargs)
    except Exception:  # noqa: BLE001 - then the refusal is judged by the pool signature alone
        return None
    return tuple(sorted((k, tuple(v.shape)) for k, v in model.state_dict().items()))


def pool_needs_other_weights(model_name: str, pool: str | None, q: str) -> str:
    """Why switching ``pool`` -> ``q`` cannot be a head reset ('' if it can): built headless
    (num_classes=0) with global_pool=q the model has other weights than with ``pool``, e.g.
    MobileNetV3's conv_head after the pool, sized for the pooled width (catavgmax doubles
    it; timm issue #1561: "requires resetting and reconfiguring that instead of just the
    final classifier"). A refusal is then the honest answer; refusing a switch that needs
    no new weights is a failure."""
    own, other = _headless_shapes(model_name, pool), _headless_shapes(model_name, q)
    if own is None or other is None or own == other:
        return ""
    changed = sorted({k for k, _ in set(own) ^ set(other)})
    return f"global_pool={q!r} builds other weights than {pool!r}: {', '.join(changed[:3])}"


@functools.lru_cache(maxsize=256)
def constructed_signature(model_name: str, pool: str) -> tuple | None:
    """The pool signature of create_model(model_name, global_pool=pool) on the meta device
    (a tuple of items, hashable for the cache), None where it does not build."""
    try:
        return tuple(sorted(heads.pool_signature(build.create(model_name, device="meta", global_pool=pool)).items()))
    except Exception:  # noqa: BLE001 - then only the pool type is compared
        return None


def check_reset_classifier(subject: ResetSubject, family: ModelFamily, max_examples: int = 6,
                           pools: tuple[str, ...] | None = None, unpooled: bool | None = None) -> list[str]:
    """The whole reset_classifier contract for one configured model: (0), (N), the round
    trip back to the original head, (N, Q) and back for every pool Q (``pools``: the
    model's discovered pools, the family's extra pool types added), (N, pool) for
    hypothesis-chosen N, and (0, '') where unpooled features are a capability (``unpooled``;
    None: wherever any pool is known). Returns the reset sequences it checked.

    The steps run on the model itself, restored before each (fresh_copy). Where a step
    wrote into its tensors or left state restoring cannot undo, passing or failing, the whole
    check runs again on deep copies of the model as it was, and that result (with a note
    naming what was written) is the check's."""
    if not subject.in_place:
        return _check(subject, family, max_examples, pools, unpooled)
    pristine = copy.deepcopy(subject.model)
    subject.snapshot = ModuleSnapshot(subject.model)
    notes = list(subject.notes)
    try:
        done = _check(subject, family, max_examples, pools, unpooled)
    except Exception:  # a failure after a step changed what it must not is decided on deep copies
        left = _left_behind(subject, pristine)
        if not left:
            raise
    else:
        left = _left_behind(subject, pristine)
        if not left:
            return done
    subject.model, subject.in_place, subject.full_checked, subject.snapshot = pristine, False, False, None
    subject.notes = notes + [f"a reset step wrote into the model in place ({', '.join(left[:3])}): "
                             f"checked again on deep copies"]
    return _check(subject, family, max_examples, pools, unpooled)


def _left_behind(subject: ResetSubject, pristine: nn.Module) -> list[str]:
    """What the steps changed in the subject's model that restoring its attributes does not
    undo: tensors written, plain state mutated below the first level. Leaves it restored."""
    return subject.snapshot.not_restored() + _tensors_written(subject.model, pristine)


def _check(subject: ResetSubject, family: ModelFamily, max_examples: int, pools: tuple[str, ...] | None,
           unpooled: bool | None) -> list[str]:
    s = subject
    plan = reset_plan(s.num_classes, s.pool, family, pools, unpooled)
    done = [apply_resets(s, list(calls), keeps_pool=True) for calls in plan.fixed]
    if plan.switches:
        def signature_of(q: str) -> dict | None:
            sig = constructed_signature(s.model_name, q)
            return dict(sig) if sig is not None else None
        switch_pools(s, list(plan.switches), plan.switch_classes, signature_of)
    if s.pool is not None:
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None)
        @given(n=st.integers(min_value=1, max_value=1000))
        def reset_with_own_pool(n: int) -> None:
            done.append(apply_resets(s, [(n, s.pool)], keeps_pool=True))

        reset_with_own_pool()
    if plan.unpooled:
        reshapes = pool_needs_other_weights(s.model_name, s.pool, "")
        refused = _raises_rejection(fresh_copy(s), 0, "") if reshapes else None
        if refused is None:
            done.append(apply_resets(s, [(0, "")], keeps_pool=False))
        else:  # unpooled features of another width than the layer after the pool was built for
            s.notes.append(f"reset_classifier(0, '') refused ({reshapes}): {refused}")
    return done
