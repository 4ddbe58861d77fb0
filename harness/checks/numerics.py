"""The numerics every check family shares: the one error-budget rule, the float64
reference, and BN calibration.

A check compares a float32 result with the model's float64 run, and accepts it when its
error stays within a budget scaled by the model's *own* float32 error (err32) for this
input and these weights: kernels and summation order legitimately move results by a
small multiple of err32, a real change moves them by far more. The numbers for each
check live in registry.tolerances."""
from __future__ import annotations

import copy

import torch
from torch import nn

from harness.registry.tolerances import Tolerance


def error_budget(tol: Tolerance, err32: float, magnitude: float) -> float:
    """How far a result may be from the float64 reference: multiplier x err32 + floor x
    magnitude (magnitude: max |reference|; err32: the model's own error at the precision
    compared, float32 unless a golden autocast profile passes its recorded autocast error)."""
    return tol.multiplier * err32 + tol.floor * magnitude


def describe_budget(tol: Tolerance, err32: float, budget: float) -> str:
    """'20 x 1.2e-05 + 1e-06 x max|out| = 3.4e-04', for failure messages."""
    return f"{tol.multiplier:g} x {err32:.3g} + {tol.floor:g} x max|out| = {budget:.3g}"


def max_abs_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    return (actual.detach().double().cpu() - reference.detach().double().cpu()).abs().max().item()


def float64_copy(model: nn.Module) -> nn.Module | None:
    """A float64 deep copy, taken before any eval-mode forward, so caches a forward fills
    (LeViT's attention biases) are built in float64 too; None where it cannot be made."""
    try:
        return copy.deepcopy(model).double()
    except Exception:  # noqa: BLE001 - the check then falls back to the floor of its budget
        return None


# A calibrated BN variance is floored at this fraction of its layer's mean variance. A BN on
# pooled 1x1 features (ReXNet's SE) sees only the batch's 2 samples per channel, and some
# channels calibrate to ~1e-6 of the layer's variance: dividing by their square root amplified
# float32 rounding until rexnet_130's own float32 error was 4% of its logits (the zoo's onnx
# and timm_utils failures, shard 7); floored, 0.02%.
CALIBRATION_VAR_FLOOR = 1e-2


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, x: torch.Tensor, var_floor: float = CALIBRATION_VAR_FLOOR) -> bool:
    """Set BN running statistics to the batch statistics of ``x`` (one train-mode pass with
    momentum 1; each variance floored at ``var_floor`` x its layer's mean), then back to eval
    mode. Returns False (statistics untouched) when the train-mode forward fails; the check
    then runs on the drawn statistics.

    fill_deterministic's running statistics are unrelated to the activations they meet, so
    activations grow layer after layer (NextViT's logits reach ~1e5) and folding a *pre*-norm
    BN into the next linear layer (NextViT, merge_pre_bn) subtracts the mean only after the
    matmul: exact in real arithmetic, but float32 cancellation then costs ~3e3x the
    unfused model's error (verified: the same fusion in float64 agrees to 1e-14). Trained
    models have running statistics that match their activations; calibrating reproduces
    that, so a check measures the model, not an artifact of random statistics."""
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
        for m in bns:
            if var_floor > 0:
                m.running_var.clamp_(min=var_floor * m.running_var.mean().item())
        return True
    except Exception:  # noqa: BLE001 - train-mode quirks are not the check's business
        for m, (_, mean, var) in zip(bns, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var)
        return False
    finally:
        model.eval()
        for m, (momentum, _, _) in zip(bns, saved):
            m.momentum = momentum


def batchnorm_statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    """The running statistics of every BN layer, by state_dict key (CPU copies)."""
    bns = {name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if k.rsplit(".", 1)[-1] in ("running_mean", "running_var") and k.rsplit(".", 1)[0] in bns}


@torch.no_grad()
def set_batchnorm_statistics(model: nn.Module, stats: dict[str, torch.Tensor]) -> list[str]:
    """Overwrite BN running statistics from ``stats``; returns the model's statistics keys that
    ``stats`` does not hold with the same shape (they keep their values)."""
    sd = model.state_dict()
    missed = []
    for key, value in batchnorm_statistics(model).items():
        if key in stats and tuple(stats[key].shape) == tuple(value.shape):
            sd[key].copy_(stats[key].to(sd[key].dtype))
        else:
            missed.append(key)
    return missed
