"""The reparam check: ``timm.utils.model.reparameterize_model`` (branch fusion, BN folding,
deploy switches) must not change what a model computes, grow it, or leave it broken.

Discovery mirrors reparameterize_model itself rather than a hand list: it walks the
children of the model and calls ``fuse()``, ``reparameterize()`` or ``switch_to_deploy()``
on any child that has the attribute (the same three names in 0.9.16 through 1.0.31), so a
model is reparameterizable when a non-root module of its meta-device tree has one of them.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from harness import build, compare, facts, model_cache
from harness.weights import BATCH_SIZE, make_input

# the attribute names reparameterize_model looks for on each child, in its order
REPARAM_METHODS: tuple[str, ...] = ("fuse", "reparameterize", "switch_to_deploy")

# Error budget of the reparameterized float32 model, in units of the original model's own
# float32 error (both measured against the original model run in float64); see error_budget.
NOISE_MULTIPLIER = 20.0
# Absolute floor of that budget, relative to the largest float64 output; see error_budget.
MAGNITUDE_FLOOR = 1e-6


def reparameterize_model(model: nn.Module) -> nn.Module:
    """timm's reparameterize_model, on a deep copy (timm.utils.model has had it since 0.9.16).

    A meta-device model is reparameterized under the meta device context, so the modules
    fuse() creates (on the default device otherwise) match the tensors assigned to them."""
    from timm.utils.model import reparameterize_model as timm_reparameterize

    on_meta = any(t.is_meta for t in model.parameters())
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        return timm_reparameterize(model, inplace=False)


def reparam_sites(model: nn.Module) -> tuple[str, ...]:
    """'path:Class.method' for each module reparameterize_model would call a method on.
    The root is excluded, as reparameterize_model only visits children."""
    sites = []
    for name, module in model.named_modules():
        method = next((m for m in REPARAM_METHODS if hasattr(module, m)), None) if name else None
        if method is not None:
            sites.append(f"{name}:{type(module).__name__}.{method}")
    return tuple(sites)


def discover(model_name: str, cache_get: Callable | None = None,
             cache_set: Callable | None = None) -> tuple[str, ...]:
    """The model's reparam sites (empty: not reparameterizable). They come from the same
    meta-device build as the other facts, so discovery costs no extra build and shares
    their cache. A model that cannot be built on meta has none; the create check reports it."""
    return facts.facts_for(model_name, cache_get, cache_set).reparam_sites


@dataclass(frozen=True)
class ReparamResult:
    """What a numeric check measured (for reports and for choosing the tolerance)."""

    err32: float            # max |float32 output - float64 output| of the original model
    err_reparam: float      # max |reparameterized float32 output - float64 output|
    budget: float
    params_before: int
    params_after: int

    @property
    def ratio(self) -> float:
        return self.err_reparam / self.err32 if self.err32 else float("inf")


def error_budget(err32: float, out64: torch.Tensor) -> float:
    """How far the reparameterized float32 output may be from the float64 reference.

    Fusing BN into convs or summing branches is exact in real arithmetic, so the only
    legitimate change is float32 rounding, and the original model's own float32 error
    (err32) measures that scale for this model, input and weights. Folding re-rounds
    weights and reorders sums, so the fused model's error differs from err32 by a modest
    factor (observed err_reparam / err32 on timm 1.0.31: nextvit_small 1.1, repvgg_a0 1.65,
    levit_128s 0.49, mobileone_s0 1.17); NOISE_MULTIPLIER=20 leaves an order of magnitude
    of room for that, while a dropped branch or a mis-folded BN moves outputs by the order
    of the outputs themselves (the toy that drops a branch: ratio 2.4e6). The floor,
    MAGNITUDE_FLOOR x max|out64| (about 10 float32 ulps of the largest output), covers
    models whose float32 error happens to be near zero."""
    return NOISE_MULTIPLIER * err32 + MAGNITUDE_FLOOR * out64.abs().max().item()


def _output(out) -> torch.Tensor:
    """One tensor from a forward output (tuples/lists of tensors are flattened and joined)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)):
        return torch.cat([_output(o).flatten() for o in out])
    raise AssertionError(f"forward returned {type(out).__name__}, expected tensor(s)")


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _output(model(x))


def _reparameterize(model: nn.Module, what: str) -> nn.Module:
    try:
        return reparameterize_model(model)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _module_paths(model: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules() if name}


def modules_left_none(before: dict[str, str], model: nn.Module) -> list[str]:
    """'path (was Class)' for each module of the original tree whose parent still exists
    but now holds None under that name (reparameterize set the attribute to None)."""
    left = []
    for path, cls in before.items():
        parent_path, _, attr = path.rpartition(".")
        try:
            parent = model.get_submodule(parent_path)
        except AttributeError:
            continue  # the parent itself was replaced (e.g. by fuse()); not a None attribute
        if getattr(parent, attr, 0) is None:
            left.append(f"{path} (was {cls})")
    return left


def _failing_module(exc: BaseException, model: nn.Module) -> str | None:
    """Path of the innermost module of ``model`` whose method was running when exc was raised."""
    paths = {id(m): name for name, m in model.named_modules()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in paths:
            found = paths[id(owner)]
        tb = tb.tb_next
    return found


def _forward_after_reparam(model: nn.Module, x: torch.Tensor, before: dict[str, str]) -> torch.Tensor:
    """Forward of the reparameterized model; a failure names the modules reparameterize
    left None (narrowed to the failing module when the traceback identifies it)."""
    try:
        return _forward(model, x)
    except Exception as exc:
        where = _failing_module(exc, model)
        left = modules_left_none(before, model)
        if where:
            near = [p for p in left if p.startswith(f"{where}.")]
            left = near or left
        detail = (f"; reparameterize left None where modules were: {', '.join(left)}" if left else "")
        at = f" in {where or '(root)'}" if where is not None else ""
        raise AssertionError(f"forward after reparameterize_model raised {type(exc).__name__}: "
                             f"{exc}{at}{detail}") from exc


def _assert_param_count(before: int, after: int, what: str) -> None:
    if after > before:
        raise AssertionError(f"{what}: parameter count grew from {before:,} to {after:,}")


def _assert_same_layout(actual: dict, expected: dict, what: str, values: bool) -> None:
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    problems = [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]
    for key in sorted(set(actual) & set(expected)):
        a, e = actual[key], expected[key]
        if tuple(a.shape) != tuple(e.shape):
            problems.append(f"{key}: shape {tuple(a.shape)} vs {tuple(e.shape)}")
        elif values and not torch.equal(a, e):
            problems.append(f"{key}: {compare.error_summary(a, e)}")
    if problems:
        raise AssertionError(compare._listing(what, problems))


def _load_into_fresh(model_name: str, device: str, state_dict: dict) -> nn.Module:
    fresh = _reparameterize(build.create(model_name, device=device),
                            "reparameterize_model on a freshly built model")
    try:
        fresh.load_state_dict(state_dict, strict=True)
    except Exception as exc:
        raise AssertionError(f"the reparameterized state_dict does not load strictly into a freshly "
                             f"built, reparameterized {model_name}: {type(exc).__name__}: {exc}") from exc
    return fresh


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> bool:
    """Set BN running statistics to the batch statistics of ``x`` (one train-mode pass with
    momentum 1), then back to eval mode. Returns False (statistics untouched) when the
    train-mode forward fails; the check then runs on the drawn statistics.

    fill_deterministic's running statistics are unrelated to the activations they meet, so
    activations grow layer after layer (NextViT's logits reach ~1e5) and folding a *pre*-norm
    BN into the next linear layer (NextViT, merge_pre_bn) subtracts the mean only after the
    matmul: exact in real arithmetic, but float32 cancellation then costs ~3e3x the
    unfused model's error (verified: the same fusion in float64 agrees to 1e-14). Trained
    models have running statistics that match their activations; calibrating reproduces
    that, so the check measures the fusion, not an artifact of random statistics."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats and m.running_mean is not None]
    if not bns:
        return False
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in bns]
    for m in bns:
        m.momentum = 1.0
    try:
        model.train()
        model(x)
        return True
    except Exception:  # noqa: BLE001 - train-mode quirks are not this check's business
        for m, (_, mean, var) in zip(bns, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var)
        return False
    finally:
        model.eval()
        for m, (momentum, _, _) in zip(bns, saved):
            m.momentum = momentum


def check_structure(model_name: str) -> None:
    """Structural checks on the meta device (over --max-params): the parameter count does
    not grow, a second reparameterize keeps the state_dict layout, and the layout loads
    strictly into a freshly built, reparameterized model."""
    model = build.create(model_name, device="meta")
    rep = _reparameterize(model, "reparameterize_model")
    _assert_param_count(build.param_count(model), build.param_count(rep), "reparameterize_model")
    sd = rep.state_dict()
    twice = _reparameterize(rep, "a second reparameterize_model")
    _assert_same_layout(twice.state_dict(), sd, "state_dict changed by a second reparameterize_model", values=False)
    _load_into_fresh(model_name, "meta", sd)


def check_reparam(model_name: str, device: str, input_size: tuple[int, ...]) -> ReparamResult | None:
    """The reparam contract for one model: (a) outputs unchanged within the model's own
    float32 noise, (b) no new parameters, (c) no module the forward calls left None,
    (d) reparameterizing twice changes nothing, (e) the reparameterized state_dict loads
    strictly into a fresh reparameterized model and reproduces its outputs. Weights come
    from fill_deterministic, BN statistics from calibrate_batchnorm. On 'meta' only the
    structural part runs (returns None)."""
    if device == "meta":
        check_structure(model_name)
        return None
    model = model_cache.deterministic(model_name, device)  # == fill_deterministic(build.create(...))
    x = make_input(model_name, input_size, BATCH_SIZE, device)
    calibrate_batchnorm(model, x)
    before = _module_paths(model)
    # copied before any forward, so caches a forward fills (LeViT attention biases) stay float64
    model64 = copy.deepcopy(model).double()
    out64 = _forward(model64, x.double())
    del model64
    out32 = _forward(model, x)
    compare.assert_finite(out32, "output before reparameterize_model")

    rep = _reparameterize(model, "reparameterize_model")
    result_params = (build.param_count(model), build.param_count(rep))
    _assert_param_count(*result_params, "reparameterize_model")
    out_rep = _forward_after_reparam(rep, x, before)
    compare.assert_shape(out_rep.shape, out32.shape, "output after reparameterize_model")

    err32 = (out32.double() - out64).abs().max().item()
    err_rep = (out_rep.double() - out64).abs().max().item()
    budget = error_budget(err32, out64)
    if not err_rep <= budget:
        raise AssertionError(
            f"output after reparameterize_model differs from the float64 reference by {err_rep:.3g} "
            f"(max abs), the float32 model by {err32:.3g}; budget {NOISE_MULTIPLIER:g} x {err32:.3g} + "
            f"{MAGNITUDE_FLOOR:g} x max|out| = {budget:.3g} (ratio {err_rep / max(err32, 1e-300):.3g}); "
            f"vs the float32 output: {compare.error_summary(out_rep, out32)}")

    sd = {k: v.detach().clone() for k, v in rep.state_dict().items()}
    twice = _reparameterize(rep, "a second reparameterize_model")
    _assert_same_layout(twice.state_dict(), sd, "state_dict changed by a second reparameterize_model", values=True)
    compare.assert_close(_forward_after_reparam(twice, x, before), out_rep,
                         "output after a second reparameterize_model", rtol=0, atol=0)

    fresh = _load_into_fresh(model_name, device, sd)
    compare.assert_close(_forward_after_reparam(fresh, x, before), out_rep,
                         "output of a fresh reparameterized model loaded with the reparameterized state_dict",
                         rtol=0, atol=0)
    return ReparamResult(err32, err_rep, budget, *result_params)
