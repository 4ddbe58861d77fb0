"""The reparam check: ``timm.utils.model.reparameterize_model`` (branch fusion, BN folding,
deploy switches) must not change what a model computes, grow it, or leave it broken.

Which models are reparameterizable is discovered (harness.models.discovery.reparam_sites,
part of the cached facts): reparameterize_model walks the children of the model and calls
``fuse()``, ``reparameterize()`` or ``switch_to_deploy()`` on any child that has the
attribute, so a model is reparameterizable when a non-root module of its meta-device tree
has one of them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from harness.checks import compare
from harness.checks.numerics import calibrate_batchnorm, describe_budget, error_budget
from harness.models import build
from harness.models.discovery import reparam_sites, reparameterize_model
from harness.models.module_tree import failing_module, module_paths, modules_left_none
from harness.registry.tolerances import REPARAM
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input


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


def _forward_after_reparam(model: nn.Module, x: torch.Tensor, before: dict[str, str]) -> torch.Tensor:
    """Forward of the reparameterized model; a failure names the modules reparameterize
    left None (narrowed to the failing module when the traceback identifies it)."""
    try:
        return _forward(model, x)
    except Exception as exc:
        where = failing_module(exc, model)
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


def _assert_changed(before: nn.Module, after: nn.Module, values: bool) -> None:
    """reparameterize_model must do something to a model that has reparam sites: replace,
    remove or add a module, or change the state_dict (keys, shapes, or with ``values`` a
    tensor). A no-op would pass every other sub-check."""
    if module_paths(after) != module_paths(before):
        return
    sa, sb = before.state_dict(), after.state_dict()
    if sa.keys() != sb.keys() or any(tuple(sa[k].shape) != tuple(sb[k].shape) for k in sa):
        return
    if values and any(not torch.equal(sa[k], sb[k]) for k in sa):
        return
    sites = reparam_sites(before)
    raise AssertionError(f"reparameterize_model changed nothing: no module replaced, added or removed and every "
                         f"state_dict tensor unchanged, though {len(sites)} module(s) have a reparameterization "
                         f"method ({', '.join(sites[:4])}{' ...' if len(sites) > 4 else ''})")


def _load_into_fresh(model_name: str, device: str, state_dict: dict) -> nn.Module:
    fresh = _reparameterize(build.create(model_name, device=device),
                            "reparameterize_model on a freshly built model")
    try:
        fresh.load_state_dict(state_dict, strict=True)
    except Exception as exc:
        raise AssertionError(f"the reparameterized state_dict does not load strictly into a freshly "
                             f"built, reparameterized {model_name}: {type(exc).__name__}: {exc}") from exc
    return fresh


def check_structure(model_name: str) -> None:
    """Structural checks on the meta device (over --max-params): the parameter count does
    not grow, a second reparameterize keeps the state_dict layout, and the layout loads
    strictly into a freshly built, reparameterized model."""
    model = build.create(model_name, device="meta")
    rep = _reparameterize(model, "reparameterize_model")
    _assert_changed(model, rep, values=False)
    _assert_param_count(build.param_count(model), build.param_count(rep), "reparameterize_model")
    sd = rep.state_dict()
    _load_into_fresh(model_name, "meta", sd)
    twice = _reparameterize(rep, "a second reparameterize_model")
    _assert_same_layout(twice.state_dict(), sd, "state_dict changed by a second reparameterize_model", values=False)


def check_reparam(model_name: str, device: str, input_size: tuple[int, ...]) -> ReparamResult | None:
    """The reparam contract for one model: (a) outputs unchanged within the model's own
    float32 noise, (b) no new parameters, (c) no module the forward calls left None,
    (d) reparameterizing twice changes nothing, (e) the reparameterized state_dict loads
    strictly into a fresh reparameterized model and reproduces its outputs; and it must not be
    a no-op. (d) runs last, after (e). Weights come
    from fill_deterministic, BN statistics from calibrate_batchnorm. On 'meta' only the
    structural part runs (returns None)."""
    if device == "meta":
        check_structure(model_name)
        return None
    model = model_cache.deterministic(model_name, device)  # == fill_deterministic(build.create(...))
    x = make_input(model_name, input_size, BATCH_SIZE, device)
    calibrate_batchnorm(model, x)
    before = module_paths(model)
    # copied before any forward, so caches a forward fills (LeViT attention biases) stay float64
    model64 = copy.deepcopy(model).double()
    out64 = _forward(model64, x.double())
    del model64
    out32 = _forward(model, x)
    compare.assert_finite(out32, "output before reparameterize_model")

    rep = _reparameterize(model, "reparameterize_model")
    _assert_changed(model, rep, values=True)
    result_params = (build.param_count(model), build.param_count(rep))
    _assert_param_count(*result_params, "reparameterize_model")
    out_rep = _forward_after_reparam(rep, x, before)
    compare.assert_shape(out_rep.shape, out32.shape, "output after reparameterize_model")

    err32 = (out32.double() - out64).abs().max().item()
    err_rep = (out_rep.double() - out64).abs().max().item()
    budget = error_budget(REPARAM, err32, out64.abs().max().item())
    if not err_rep <= budget:
        raise AssertionError(
            f"output after reparameterize_model differs from the float64 reference by {err_rep:.3g} "
            f"(max abs), the float32 model by {err32:.3g}; budget {describe_budget(REPARAM, err32, budget)} "
            f"(ratio {err_rep / max(err32, 1e-300):.3g}); "
            f"vs the float32 output: {compare.error_summary(out_rep, out32)}")

    sd = {k: v.detach().clone() for k, v in rep.state_dict().items()}
    fresh = _load_into_fresh(model_name, device, sd)
    compare.assert_close(_forward_after_reparam(fresh, x, before), out_rep,
                         "output of a fresh reparameterized model loaded with the reparameterized state_dict",
                         rtol=0, atol=0)

    # idempotence last: a model whose second reparameterize raises (FastViT's RepMixer) still
    # had every sub-check above
    twice = _reparameterize(rep, "a second reparameterize_model")
    _assert_same_layout(twice.state_dict(), sd, "state_dict changed by a second reparameterize_model", values=True)
    compare.assert_close(_forward_after_reparam(twice, x, before), out_rep,
                         "output after a second reparameterize_model", rtol=0, atol=0)
    return ReparamResult(err32, err_rep, budget, *result_params)
