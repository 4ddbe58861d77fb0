"""Tolerances, as data: one ``Tolerance`` per check (and per golden profile), plus the
per-model overrides, each with its reason. The rule that turns a tolerance into a budget
is ``harness.checks.numerics.error_budget``; the reasoning behind each number is here.

Every budget has the form ``multiplier x err32 x eps_ratio + floor x magnitude``: err32 is
the model's own float32 error for this input and these weights (its float32 output
against its float64 output), so the budget scales with the model's own noise; the floor
covers models whose float32 error happens to be near zero."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """err <= multiplier * err32 * eps_ratio + floor * magnitude (numerics.error_budget).

    ``eps_ratio`` scales the recorded float32 noise to a lower precision (machine epsilon
    of the compute dtype over float32's): under autocast the error grows with the
    precision's epsilon, so err32 * eps_ratio estimates the model's own bf16/fp16 noise."""

    multiplier: float
    floor: float
    eps_ratio: float = 1.0


# reparam: fusing BN into convs or summing branches is exact in real arithmetic, so the
# only legitimate change is float32 rounding. Folding re-rounds weights and reorders sums,
# so the fused model's error differs from err32 by a modest factor (observed err_reparam /
# err32 on timm 1.0.31: nextvit_small 1.1, repvgg_a0 1.65, levit_128s 0.49, mobileone_s0
# 1.17); 20 leaves an order of magnitude of room for that, while a dropped branch or a
# mis-folded BN moves outputs by the order of the outputs themselves (the toy that drops a
# branch: ratio 2.4e6). The floor, 1e-6 x max|out64|, is about 10 float32 ulps.
REPARAM = Tolerance(multiplier=20.0, floor=1e-6)

# onnx: the exported graph computes the same function with different kernels and summation
# order (and constant-folded BN); 20 x err32 leaves room for kernels that round
# differently; a wrong op or a baked batch size moves outputs by the order of the outputs.
# The floor (~100 float32 ulps) also covers models that cannot run in float64.
ONNX = Tolerance(multiplier=20.0, floor=1e-5)

# transforms (torch.compile with the eager/aot_eager backends, torch.jit.script, FX
# tracing, channels_last, batch invariance, gradient checkpointing): each computes the
# eager model's function with other kernels, another memory layout, another batch
# blocking or a recomputation; like the ONNX export, that moves results by a small
# multiple of err32 (observed on the smoke set: 0 to 2 x err32), while a dropped
# residual, a sample mixed into another or a stale buffer moves them by the order of the
# outputs. The floor (~100 float32 ulps of max|out|) covers models whose err32 is near 0.
# For gradients (gradient checkpointing) err32 is the float32 gradient's error against
# the float64 model's gradient.
TRANSFORMS = Tolerance(multiplier=20.0, floor=1e-5)

# inductor on CUDA (nightly): generated Triton kernels with their own reduction orders,
# against err32 measured on the CPU; the cuda-float32 golden profile's numbers.
INDUCTOR_CUDA = Tolerance(multiplier=50.0, floor=1e-5)

# meta_init's dtype= factory kwarg: the model built natively in float64 against the
# float32 build converted to float64. Computed buffers are then computed in float64 rather
# than rounded from float32, which moves outputs by about the model's own float32 error.
FACTORY_DTYPE = Tolerance(multiplier=20.0, floor=1e-6)

# golden, by "<device>-<precision>". CPU float32: the reparam budget: reordering (thread
# counts, blocking) moves results by 1-3 x err32, a real change of 1e-3 relative by far
# more than 20 x err32 on any model whose own error is under 5e-5 relative. CUDA float32
# with TF32 off uses other kernels and reduction orders than the CPU run that measured
# err32: a wider multiplier. Autocast scales err32 by the epsilon ratio (bf16 2^-8, fp16
# 2^-11 over float32's 2^-24); since autocast keeps reductions and norms in float32 the
# estimate is generous, and the floor is a few bf16/fp16 ulps of the largest output.
GOLDEN_PROFILES: dict[str, Tolerance] = {
    "cpu-float32": Tolerance(multiplier=20.0, floor=1e-6),
    "cuda-float32": Tolerance(multiplier=50.0, floor=1e-5),
    "cpu-bf16": Tolerance(multiplier=2.0, floor=2e-2, eps_ratio=2.0 ** 16),
    "cuda-bf16": Tolerance(multiplier=2.0, floor=2e-2, eps_ratio=2.0 ** 16),
    "cpu-fp16": Tolerance(multiplier=2.0, floor=4e-3, eps_ratio=2.0 ** 13),
    "cuda-fp16": Tolerance(multiplier=2.0, floor=4e-3, eps_ratio=2.0 ** 13),
}


@dataclass(frozen=True)
class ToleranceOverride:
    """A looser (or tighter) golden tolerance for some models, profiles and keys, always
    with the reason it is needed. ``keys`` empty: every key."""

    models: str          # fnmatch pattern
    profile: str         # fnmatch pattern over GOLDEN_PROFILES keys
    tolerance: Tolerance
    reason: str
    keys: tuple[str, ...] = ()


GOLDEN_OVERRIDES: tuple[ToleranceOverride, ...] = ()


def golden_tolerance(model: str, profile: str, key: str,
                     overrides: tuple[ToleranceOverride, ...] | None = None) -> Tolerance:
    """The first override that matches, else the profile's tolerance."""
    for o in GOLDEN_OVERRIDES if overrides is None else overrides:
        if fnmatch.fnmatchcase(model, o.models) and fnmatch.fnmatchcase(profile, o.profile) \
                and (not o.keys or key in o.keys):
            return o.tolerance
    if profile not in GOLDEN_PROFILES:
        raise ValueError(f"no golden tolerance profile {profile!r}; known: {', '.join(GOLDEN_PROFILES)}")
    return GOLDEN_PROFILES[profile]
