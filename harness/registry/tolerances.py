"""Tolerances, as data: one ``Tolerance`` per check (and per golden profile), plus the
per-model overrides, each with its reason. The rule that turns a tolerance into a budget
is ``harness.checks.numerics.error_budget``; the reasoning behind each number is here.

Every budget has the form ``multiplier x err32 + floor x magnitude``: err32 is the model's
own error for this input and these weights (its float32 output against its float64 output;
for the golden autocast profiles its recorded autocast output), so the budget scales with
the model's own noise; the floor covers models whose error happens to be near zero."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """err <= multiplier * err32 + floor * magnitude (numerics.error_budget)."""

    multiplier: float
    floor: float


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

# features: the same feature maps reached through different code paths (forward_intermediates
# vs the features_only wrapper, FeatureGetterNet vs the default wrapper, forward_intermediates'
# final output vs forward_features). Both run the same modules, so on timm 1.0.31 every model
# sampled agrees bitwise (the smoke set: max abs err 0); the budget only allows a code path
# to reorder a sum. A tap at the wrong block, a missing norm or a swapped index moves a feature
# map by the order of its values. Where the same computation must give the same result (the
# same wrapper at another out_indices, hook/FX taps of the same modules, stop_early, pruning,
# output_fmt) the checks compare bitwise instead.
FEATURES = Tolerance(multiplier=20.0, floor=1e-6)

# geometry: a static model built at (H, W) vs a dynamic_img_size model resampling its position
# embedding at run time, set_input_size() vs a model built at the size: the same resample
# (timm.layers.resample_abs_pos_embed) done at another point, so float32 rounding of the
# resampled table and the forward is all that may differ; a transposed grid or a different
# interpolation moves the output by the order of the output. Also the resampled pos_embed
# itself against the definition (F.interpolate), err32 measured on the interpolation.
GEOMETRY = Tolerance(multiplier=20.0, floor=1e-6)

# golden, by "<device>-<precision>". Each profile scales the model's own error at that
# precision (float32, or bf16/fp16 autocast), measured against the float64 reference when
# recording (on the CPU). CPU float32: the reparam budget: reordering (thread counts, blocking)
# moves results by 1-3 x err32, while a change of 1e-3 of the output exceeds 20 x err32 on any
# model whose own error is under 5e-5 of its output (recording refuses models above 1e-4,
# GOLDEN_MAX_NOISE). CUDA float32 (TF32 off): other kernels and reduction orders than the CPU
# run that measured err32, so a wider multiplier; still under 1e-3 of the output.
# Autocast: the budget is 4 x the model's own autocast error as recorded on the CPU (CUDA's
# autocast kernels differ from the CPU's: 4 leaves room for that, unmeasured on a GPU here)
# plus a floor of about two ulps of the largest output (bf16 2^-7, fp16 2^-10). bf16's own
# error is 0.7-7.5% of the output on the models measured (toy 0.7%, resnet18 4.5%, nextvit_small
# 7.5%; fp16 0.06-1.1%), so an autocast profile cannot see a 1% change on such models: that is
# the float32 profiles' job; autocast profiles catch what breaks under reduced precision
# (overflow, a wrong cast, NaN) and changes larger than a few times their own noise.
GOLDEN_PROFILES: dict[str, Tolerance] = {
    "cpu-float32": Tolerance(multiplier=20.0, floor=1e-6),
    "cuda-float32": Tolerance(multiplier=50.0, floor=1e-5),
    # models too noisy in float32 for the gate below run in float64; their noise is the float32
    # rounding of the stored reference (half an ulp), so the floor (~10 ulps of max|ref|) rules
    "cpu-float64": Tolerance(multiplier=20.0, floor=1e-6),
    "cuda-float64": Tolerance(multiplier=20.0, floor=1e-6),
    "cpu-bf16": Tolerance(multiplier=4.0, floor=8e-3),
    "cuda-bf16": Tolerance(multiplier=4.0, floor=8e-3),
    "cpu-fp16": Tolerance(multiplier=4.0, floor=1e-3),
    "cuda-fp16": Tolerance(multiplier=4.0, floor=1e-3),
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


# Recording a golden file: a model whose own float32 error (err32, vs the float64 reference)
# exceeds this fraction of max|reference| for some output is refused, because its cpu-float32
# budget (20 x err32) would then pass changes of 2e-3 of the output and more. Calibrated BN
# statistics (harness.checks.golden) keep ordinary models far below it (resnet18 ~1e-7).
GOLDEN_MAX_NOISE = 1e-4


@dataclass(frozen=True)
class GoldenNoiseAllowance:
    """A model allowed to record with more float32 noise than GOLDEN_MAX_NOISE, with why."""

    models: str          # fnmatch pattern
    max_noise: float
    reason: str


GOLDEN_NOISE_ALLOWANCES: tuple[GoldenNoiseAllowance, ...] = ()


def golden_max_noise(model: str, allowances: tuple[GoldenNoiseAllowance, ...] | None = None) -> float:
    """The largest err32 / max|reference| a golden recording of ``model`` may have."""
    for a in GOLDEN_NOISE_ALLOWANCES if allowances is None else allowances:
        if fnmatch.fnmatchcase(model, a.models):
            return a.max_noise
    return GOLDEN_MAX_NOISE


# layers: a timm layer against its torch reference (harness.checks.layers). err32 is the
# reference's own float32 error on the same input (or, for attention, the path's own), so the
# budget is that of a correct float32 implementation with other kernels and summation order:
# 20 x err32, as reparam. The floor, 1e-6 x max|ref| (~10 float32 ulps), covers exact ops
# (relu, max pool) whose err32 is 0. A layer that is wrong by 1% of its output is off by
# 1e-2 x max|ref|, four orders of magnitude above the floor.
LAYERS = Tolerance(multiplier=20.0, floor=1e-6)
