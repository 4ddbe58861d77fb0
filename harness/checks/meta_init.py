"""The meta_init check family: a model built without allocating its weights and then
materialized is the model a normal build gives. Variants (ids '<model>-<variant>'):

- ``meta_to_empty``: ``create_model`` under ``torch.device('meta')``, ``to_empty``, the
  checkpoint loaded strictly, then timm's re-init of the non-persistent buffers
  (``reinit_non_persistent_buffers``: every module's ``init_non_persistent_buffers()``,
  timm 1.0.23 on). Every tensor has the normal build's shape and dtype, every buffer its
  value, the forward its output.
- ``init_weights``: for models whose ``init_weights`` takes ``needs_reset`` (timm's
  meta-device init API, discovered from the signature): after ``to_empty``,
  ``init_weights()`` and the buffer re-init leave no parameter or buffer uninitialized.
- ``accelerate``: ``accelerate.init_empty_weights()`` (parameters on meta, buffers
  computed for real, as transformers builds timm models), then the checkpoint loaded with
  ``load_state_dict(assign=True)``: nothing is left on the meta device, every buffer
  equals the normal build's, the forward its output (timm #2661: 1.0.23-1.0.24 skipped
  the buffer init there).
- ``device_dtype``: for constructors that take ``device=`` and ``dtype=`` (timm's factory
  kwargs, discovered from the signature): ``device='meta'`` allocates nothing anywhere
  else, ``dtype=torch.float64`` builds every floating tensor in float64 with the normal
  build's computed buffers and outputs (within the float32 error).

To make "uninitialized" observable, ``to_empty``'s memory is poisoned (NaN, an integer
sentinel) before anything runs, so a buffer nobody recomputes cannot pass by luck. Nothing
here catches an exception to decide what applies: a build that raises is a failure.
"""
from __future__ import annotations

from typing import Any, Callable

import timm
import torch
from torch import nn

from harness.checks import compare
from harness.checks.numerics import float64_copy
from harness.models import build
from harness.models.discovery import non_persistent_buffers
from harness.registry.tolerances import FACTORY_DTYPE, TRANSFORMS
from harness.weights import model_cache
from harness.weights.deterministic import make_input

VARIANTS = ("meta_to_empty", "init_weights", "accelerate", "device_dtype")
INT_POISON = -7  # no index, size or count a constructor computes


class MetaInitError(AssertionError):
    """A meta_init failure; the message starts with the variant's steps."""


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def _create(model_name: str, what: str, **kwargs: Any) -> nn.Module:
    try:
        return timm.create_model(model_name, **kwargs)
    except Exception as exc:
        raise MetaInitError(f"{what} raised {_first_line(exc)}") from None


def buffer_reinit() -> Callable[[nn.Module], list[str]] | None:
    """timm's re-init of non-persistent buffers, where the release has one."""
    try:
        from timm.models._manipulate import reinit_non_persistent_buffers
    except ImportError:
        return None
    return reinit_non_persistent_buffers


@torch.no_grad()
def poison(model: nn.Module) -> None:
    """Fill every parameter and buffer with values no init leaves behind."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point() or t.is_complex():
            t.fill_(float("nan"))
        elif t.dtype != torch.bool:
            t.fill_(INT_POISON)


def layout_differences(model: nn.Module, reference: nn.Module) -> list[str]:
    """Tensors (parameters and all buffers) whose name, shape or dtype differs."""
    def tensors(m: nn.Module) -> dict[str, torch.Tensor]:
        return dict(list(m.named_parameters()) + list(m.named_buffers()))

    got, want = tensors(model), tensors(reference)
    lines = [f"{k}: missing" for k in want if k not in got] + [f"{k}: unexpected" for k in got if k not in want]
    lines += [f"{k}: {tuple(got[k].shape)} {got[k].dtype}, normal build {tuple(v.shape)} {v.dtype}"
              for k, v in want.items() if k in got and (got[k].shape != v.shape or got[k].dtype != v.dtype)]
    return lines


def buffer_differences(model: nn.Module, reference: nn.Module, names: list[str] | None = None) -> list[str]:
    """Buffers whose value differs bitwise from the normal build's (all, or ``names``)."""
    ref = dict(reference.named_buffers())
    lines = []
    for name, b in model.named_buffers():
        if (names is not None and name not in names) or name not in ref:
            continue
        want = ref[name]
        if b.is_meta:
            lines.append(f"{name}: left on the meta device")
        elif b.shape != want.shape or not torch.equal(b.cpu().to(want.dtype), want):
            nan = b.is_floating_point() and torch.isnan(b).any().item()
            poisoned = nan or (not b.is_floating_point() and b.dtype != torch.bool and (b == INT_POISON).any().item())
            lines.append(f"{name}: {'never recomputed (still holds the uninitialized memory)' if poisoned else ''}"
                         f"{'' if poisoned else 'differs from the normal build, ' + compare.error_summary(b, want)}")
    return lines


def _reference(model_name: str) -> nn.Module:
    return model_cache.deterministic(model_name, "cpu")


def _assert_outputs(model: nn.Module, reference: nn.Module, model_name: str, input_size, what: str) -> None:
    """The model's outputs against the normal build's, within the budget of the normal build's
    float64 run; that run is made only where the outputs differ at all (loaded from the same
    state_dict they usually agree bit for bit, and then need no budget)."""
    x = make_input(model_name, input_size)
    model.eval()
    ref64 = float64_copy(reference)  # before the reference's first eval forward (see float64_copy)
    with torch.no_grad():
        want = compare.flatten_outputs(reference(x))
        try:
            got = compare.flatten_outputs(model(x))
        except Exception as exc:
            raise MetaInitError(f"{what}: the forward raised {_first_line(exc)}") from None
        identical = compare.bitwise_equal(got, want)
        want64 = compare.flatten_outputs(ref64(x.double())) if ref64 is not None and not identical \
            else [None] * len(want)
    for i, (g, w, w64) in enumerate(zip(got, want, want64)):
        compare.assert_within_budget(g, w, w64, TRANSFORMS, f"{what}: output {i}", "the normal build")


def _fail(what: str, title: str, lines: list[str]) -> None:
    if lines:
        raise MetaInitError(f"{what}: " + compare._listing(title, lines))


def check_meta_to_empty(model_name: str, input_size, numeric: bool) -> None:
    what = "create_model under torch.device('meta')"
    with torch.device("meta"):
        model = _create(model_name, what)
    reference = _reference(model_name) if numeric else build.create(model_name, device="meta")
    _fail(what, "tensors unlike the normal build's", layout_differences(model, reference))
    if not numeric:
        return
    what += ", to_empty, load_state_dict, re-init of non-persistent buffers"
    model.to_empty(device="cpu")
    poison(model)
    model.load_state_dict(reference.state_dict(), strict=True)
    reinit = buffer_reinit()
    if reinit is not None:
        reinit(model)
    missing_api = "" if reinit is not None else \
        f" (timm {build.timm_version()} has no reinit_non_persistent_buffers / init_non_persistent_buffers)"
    _fail(what, f"buffers unlike the normal build's{missing_api}", buffer_differences(model, reference))
    _assert_outputs(model, reference, model_name, input_size, what)


def check_init_weights(model_name: str, input_size, numeric: bool) -> None:
    what = "torch.device('meta') build, to_empty, init_weights(), re-init of non-persistent buffers"
    with torch.device("meta"):
        model = _create(model_name, "create_model under torch.device('meta')")
    if not numeric:
        return
    model.to_empty(device="cpu")
    poison(model)
    try:
        model.init_weights()
        reinit = buffer_reinit()
        if reinit is not None:
            reinit(model)
    except Exception as exc:
        raise MetaInitError(f"{what}: raised {_first_line(exc)}") from None
    left = [f"{n} ({'parameter' if isinstance(t, nn.Parameter) else 'buffer'})"
            for n, t in list(model.named_parameters()) + list(model.named_buffers())
            if t.is_floating_point() and not torch.isfinite(t).all().item()]
    _fail(what, "tensors init_weights left uninitialized", left)
    reference = _reference(model_name)
    _fail(what, "non-persistent buffers unlike the normal build's",
          buffer_differences(model, reference, list(non_persistent_buffers(reference))))


def check_accelerate(model_name: str, input_size, numeric: bool) -> None:
    from accelerate import init_empty_weights

    what = "create_model under accelerate.init_empty_weights()"
    with init_empty_weights():
        model = _create(model_name, what)
    reference = _reference(model_name) if numeric else build.create(model_name, device="meta")
    _fail(what, "tensors unlike the normal build's", layout_differences(model, reference))
    if not numeric:
        return
    what += ", load_state_dict(assign=True)"
    model.load_state_dict(reference.state_dict(), strict=True, assign=True)
    on_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    _fail(what, "tensors left on the meta device", on_meta)
    _fail(what, "buffers unlike the normal build's", buffer_differences(model, reference))
    _assert_outputs(model, reference, model_name, input_size, what)


def check_device_dtype(model_name: str, input_size, numeric: bool) -> None:
    what = "create_model(device='meta')"
    model = _create(model_name, what, device="meta")
    _fail(what, "tensors not on the meta device",
          [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if not t.is_meta])
    if not numeric:
        return
    reference = _reference(model_name)
    what = "create_model(dtype=torch.float64)"
    model = _create(model_name, what, dtype=torch.float64).eval()
    _fail(what, "floating tensors not in float64",
          [f"{n}: {t.dtype}" for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and t.dtype != torch.float64])
    ref_buffers = dict(reference.named_buffers())
    computed = [n for n in non_persistent_buffers(reference) if ref_buffers[n].is_floating_point()]
    off = []
    for name, b in model.named_buffers():
        if name in computed:
            try:
                torch.testing.assert_close(b.float(), ref_buffers[name])
            except AssertionError:
                off.append(f"{name}: {compare.error_summary(b, ref_buffers[name])}")
    _fail(what, "computed buffers unlike the float32 build's", off)
    model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in reference.state_dict().items()})
    x = make_input(model_name, input_size)
    ref64 = float64_copy(reference)
    with torch.no_grad():
        want = compare.flatten_outputs(reference(x))
        want64 = compare.flatten_outputs(ref64(x.double()))
        try:
            got = compare.flatten_outputs(model(x.double()))
        except Exception as exc:
            raise MetaInitError(f"{what}: the forward raised {_first_line(exc)}") from None
    for i, (g, w, w64) in enumerate(zip(got, want, want64)):
        compare.assert_within_budget(g, w64, w, FACTORY_DTYPE, f"{what}: output {i}",
                                     "the float32 build run in float64")


CHECKS: dict[str, Callable[[str, Any, bool], None]] = {
    "meta_to_empty": check_meta_to_empty,
    "init_weights": check_init_weights,
    "accelerate": check_accelerate,
    "device_dtype": check_device_dtype,
}


def applicable(facts) -> tuple[str, ...]:
    """meta_to_empty and accelerate for every model; init_weights and device_dtype where
    the model declares them (ModelFacts.deferred_init / factory_kwargs, from signatures)."""
    return tuple(v for v in VARIANTS if v not in ("init_weights", "device_dtype")
                 or (v == "init_weights" and facts.deferred_init) or (v == "device_dtype" and facts.factory_kwargs))


def check_meta_init(model_name: str, input_size, variant: str, numeric: bool) -> None:
    """One meta_init case; ``numeric`` False (over --max-params): structure only."""
    if variant not in CHECKS:
        raise ValueError(f"unknown meta_init variant {variant!r}; expected one of {VARIANTS}")
    CHECKS[variant](model_name, input_size, numeric)
