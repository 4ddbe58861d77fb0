"""Comparisons whose failure messages say what differed: key names, shapes, max
absolute/relative error. Thin wrappers over torch.testing.assert_close."""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from harness.checks.numerics import describe_budget, error_budget, max_abs_error
from harness.models.build import flatten_outputs  # noqa: F401 - the checks' name for it
from harness.registry.tolerances import Tolerance

MAX_LISTED = 12


def _listing(title: str, lines: list[str]) -> str:
    shown = lines[:MAX_LISTED]
    more = f"\n  ... and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return f"{title} ({len(lines)}):\n  " + "\n  ".join(shown) + more


def error_summary(actual: torch.Tensor, expected: torch.Tensor) -> str:
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    abs_err = (a - e).abs()
    rel_err = abs_err / e.abs().clamp_min(1e-12)
    return f"max abs err {abs_err.max().item():.3g}, max rel err {rel_err.max().item():.3g}"


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str,
                 rtol: float | None = None, atol: float | None = None) -> None:
    """torch.testing.assert_close with the quantity named first in the message."""
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    try:
        torch.testing.assert_close(actual.detach().cpu(), expected.detach().cpu(), rtol=rtol, atol=atol)
    except AssertionError as exc:
        raise AssertionError(f"{what} differs: {error_summary(actual, expected)}\n{exc}") from None


def assert_finite(t: torch.Tensor, what: str) -> None:
    if t.is_meta:
        return
    bad = (~torch.isfinite(t)).sum().item()
    if bad:
        raise AssertionError(f"{what}: {bad} of {t.numel()} values are not finite")


def assert_shape(shape: Iterable[int], expected: Iterable[int], what: str) -> None:
    if tuple(shape) != tuple(expected):
        raise AssertionError(f"{what}: shape {tuple(shape)}, expected {tuple(expected)}")


def assert_loaded_from(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor],
                       head_prefixes: tuple[str, ...], head_may_change: bool) -> None:
    """Every tensor of the model came from the checkpoint, except the classifier when the
    variant changed it. Catches silently re-initialized backbone tensors, not only
    failed strict loads."""
    problems: list[str] = []
    for key, value in model_sd.items():
        if head_may_change and key.startswith(head_prefixes):
            continue
        ref = ckpt_sd.get(key)
        if ref is None:
            problems.append(f"{key}: not in the checkpoint (kept its init value)")
        elif tuple(ref.shape) != tuple(value.shape):
            problems.append(f"{key}: shape {tuple(value.shape)} vs checkpoint {tuple(ref.shape)}")
        elif not value.is_meta and not torch.equal(value.detach().cpu(), ref.detach().cpu()):
            problems.append(f"{key}: value differs from the checkpoint, {error_summary(value, ref)}")
    if problems:
        raise AssertionError(_listing("backbone tensors not loaded from the checkpoint", problems))


def assert_within_budget(actual: torch.Tensor, reference: torch.Tensor, reference64: torch.Tensor | None,
                         tol: Tolerance, what: str, against: str = "eager") -> tuple[float, float]:
    """``actual`` against the float32 eager ``reference``, within the budget that the
    reference's own error against the float64 run (``reference64``; None: the floor only)
    allows. Returns (error, budget); raises naming the error as a multiple of err32."""
    if tuple(actual.shape) != tuple(reference.shape):
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, {against} {tuple(reference.shape)}")
    assert_finite(reference, f"{what}: the eager reference")
    err = max_abs_error(actual, reference)
    err32 = max_abs_error(reference, reference64) if reference64 is not None else 0.0
    budget = error_budget(tol, err32, reference.detach().abs().max().item())
    if not err <= budget:
        times = f"{err / err32:.3g} x" if err32 > 0 else "no float64 reference for"
        raise AssertionError(f"{what} differs from {against}: {error_summary(actual, reference)}; budget "
                             f"{describe_budget(tol, err32, budget)} ({times} the model's own float32 error "
                             f"{err32:.3g})")
    return err, budget


def bitwise_equal(got, want) -> bool:
    """Whether two tensor sequences are equal bit for bit (count, shapes, values): such
    results need no error budget, so their float64 reference is not worth computing."""
    got, want = list(got), list(want)
    return len(got) == len(want) and all(g.shape == w.shape and torch.equal(g, w) for g, w in zip(got, want))
