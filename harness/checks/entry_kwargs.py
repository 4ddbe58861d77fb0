"""The entry-point kwargs round trip: the kwargs a model's entry point passes to
``build_model_with_cfg`` (captured there), passed back explicitly by a user with the same
values, must build the same model: the entry point receives them, passes the same values
on, the state_dict layout is the same and, on the deterministic weights, so are the outputs.

An entry point that refuses a kwarg before building anything (``dict(block_args=...,
**kwargs)`` collides with a user's ``block_args``) fixes it by design; such kwargs are
named in the result and left out of the round trip. A refusal after the builder was
reached, a different layout or different outputs fail."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.checks import compare
from harness.models import build
from harness.models.capabilities import capture_builder_kwargs, entry_kwargs
from harness.weights.deterministic import fill_deterministic, make_input, single_thread
from harness.weights.model_cache import skip_init


@dataclass
class RoundTrip:
    passed: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)   # kwarg -> how the entry point refused it


def canonical(value: Any) -> Any:
    """A comparable form of a kwarg value: partials, classes and functions by what they are,
    containers elementwise (two calls build equal but distinct partials)."""
    if isinstance(value, functools.partial):
        return ("partial", canonical(value.func), canonical(value.args), canonical(value.keywords))
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), canonical(v)) for k, v in value.items()))
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def refused_before_building(model_name: str, key: str, value: Any) -> str | None:
    """How the entry point refuses ``key=value`` from a user before it reaches the builder
    (meta device), or None where it accepts it (or fails later: the round trip reports that)."""
    with capture_builder_kwargs() as calls:
        try:
            with torch.device("meta"):
                build.timm.create_model(model_name, **{key: value})
        except Exception as exc:  # noqa: BLE001 - classified below
            return f"{type(exc).__name__}: {exc}"[:200] if not calls else None
    return None


def _build(model_name: str, device: str, **kwargs) -> tuple[torch.nn.Module, dict[str, Any]]:
    if device == "meta":
        return entry_kwargs(model_name, "meta", **kwargs)
    with skip_init():  # every weight is overwritten by fill_deterministic
        model, captured = entry_kwargs(model_name, device, **kwargs)
    return fill_deterministic(model, model_name), captured


def check_entry_kwargs(model_name: str, device: str, input_size) -> RoundTrip:
    """The round trip for one model. Raises AssertionError naming what differed."""
    original, captured = _build(model_name, device)
    trip = RoundTrip()
    for key, value in captured.items():
        refusal = refused_before_building(model_name, key, value)
        if refusal is None:
            trip.passed[key] = value
        else:
            trip.fixed[key] = refusal
    shown = ", ".join(f"{k}={v!r}" for k, v in trip.passed.items())[:300]
    what = f"create_model({model_name!r}, {shown})"
    try:
        again, recaptured = _build(model_name, device, **trip.passed)
    except Exception as exc:
        raise AssertionError(f"{what} (the kwargs its entry point passes to build_model_with_cfg, passed back) "
                             f"raised {type(exc).__name__}: {exc}") from exc
    changed = [f"{k}: {canonical(captured.get(k))!r} -> {canonical(recaptured.get(k))!r}"
               for k in sorted(set(captured) | set(recaptured))
               if canonical(captured.get(k)) != canonical(recaptured.get(k))]
    if changed:
        raise AssertionError(compare._listing(f"{what}: the entry point passed other kwargs to build_model_with_cfg",
                                              changed))
    a, b = original.state_dict(), again.state_dict()
    layout_a = {k: tuple(v.shape) for k, v in a.items()}
    layout_b = {k: tuple(v.shape) for k, v in b.items()}
    if layout_a != layout_b:
        diff = [f"{k}: {layout_a.get(k, 'absent')} -> {layout_b.get(k, 'absent')}"
                for k in sorted(set(layout_a) | set(layout_b)) if layout_a.get(k) != layout_b.get(k)]
        raise AssertionError(compare._listing(f"{what}: state_dict layout differs from the default build", diff))
    if device == "meta":
        return trip
    x = make_input(model_name, tuple(input_size), device=device)
    with torch.no_grad(), single_thread():
        out_a, out_b = original(x), again(x)
    for i, (oa, ob) in enumerate(zip(_tensors(out_a), _tensors(out_b))):
        compare.assert_close(ob, oa, f"{what}: output{f'[{i}]' if i else ''} vs the default build")
    return trip


def _tensors(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]
