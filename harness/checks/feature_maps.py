"""Feature maps as the features checks read them: layouts (NCHW / NHWC / NLC tokens),
channels and spatial size measured from the tensors, the stride measured from two input
sizes, a module's raw output related to the feature map it should be, and comparisons
whose messages name the level that differed (and the level a misplaced map equals)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from harness.checks import compare
from harness.checks.numerics import describe_budget, error_budget
from harness.models.meta_limits import is_meta_limitation
from harness.registry.tolerances import Tolerance

# two input sizes differing by a multiple of every stride a model has: each layer's output
# then grows by exactly STRIDE_PROBE / its stride, padding or not (floor((H + d - k) / s) + 1
# grows by d / s when s divides d), so the stride is measured, never read back
STRIDE_PROBE = 64


def layout_of(model: nn.Module) -> str:
    """The layout a features model returns: its output_fmt (a timm Format or str), else NCHW."""
    fmt = getattr(model, "output_fmt", None)
    return str(getattr(fmt, "value", fmt) or "NCHW")


def channel_axis(layout: str) -> int:
    return -1 if layout in ("NHWC", "NLC") else 1


def spatial(t: torch.Tensor, layout: str) -> tuple[int, int]:
    return tuple(t.shape[1:3]) if layout == "NHWC" else tuple(t.shape[-2:])


def to_nchw(maps: list[torch.Tensor], layout: str) -> list[torch.Tensor]:
    """Maps in NCHW, whatever layout a wrapper declares (swin's FeatureListNet returns NHWC,
    its FeatureGetterNet and forward_intermediates NCHW: the same tensors, other layouts)."""
    return [t.permute(0, 3, 1, 2) if layout == "NHWC" and t.dim() == 4 else t for t in maps]


def tensor_list(out, what: str) -> list[torch.Tensor]:
    """A forward's list/tuple of feature maps; anything else is a failure naming it."""
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in out):
        kind = type(out).__name__ if not isinstance(out, (list, tuple)) else \
            f"{type(out).__name__} of {', '.join(sorted({type(t).__name__ for t in out}))}"
        raise AssertionError(f"{what} returned {kind}, expected a list of tensors")
    return list(out)


def run(model: nn.Module, x: torch.Tensor, what: str, **kwargs):
    """model(x) (or forward_intermediates with kwargs) without grad; a failure names ``what``."""
    fn = model.forward_intermediates if kwargs.pop("_intermediates", False) else model
    try:
        with torch.no_grad():
            return fn(x, **kwargs)
    except Exception as exc:
        if x.is_meta and is_meta_limitation(exc):
            raise
        raise AssertionError(f"{what} raised {type(exc).__name__}: {str(exc)[:500]}") from exc


def intermediates(model: nn.Module, x: torch.Tensor, what: str, **kwargs):
    """forward_intermediates(x, **kwargs); (final, [maps]) or [maps] with intermediates_only."""
    out = run(model, x, what, _intermediates=True, **kwargs)
    if kwargs.get("intermediates_only"):
        return tensor_list(out, what)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"{what} returned {type(out).__name__}, expected (final output, intermediates)")
    return out[0], tensor_list(out[1], what)


def _bigger_maps(model: nn.Module, x: torch.Tensor, count: int, layout: str) -> list[tuple[int, int]] | None:
    """The map sizes of a meta copy of the model at the input size + STRIDE_PROBE, or None
    when the model refuses that size (a fixed img_size) or cannot run on meta."""
    size = tuple(x.shape[-2:])
    try:
        meta = model if x.is_meta else copy.deepcopy(model).to("meta")
        probe = torch.empty((1, x.shape[1], *(s + STRIDE_PROBE for s in size)), device="meta")
        bigger = tensor_list(run(meta, probe, "probe"), "probe")
    except Exception:  # noqa: BLE001 - a model fixed to one input size: measured at that size
        return None
    return [spatial(t, layout) for t in bigger] if len(bigger) == count else None


def stride_disagreement(claimed: int, size: tuple[int, int], dims: tuple[int, int],
                        bigger: tuple[int, int] | None) -> str:
    """'' when a map of ``dims`` for an input of ``size`` has stride ``claimed``, else what was
    measured. With the bigger run, the stride is STRIDE_PROBE / the growth of the map (exact,
    padding or not); without it, each side must be the input side / claimed, rounded either way
    or one less."""
    growth = tuple(b - a for b, a in zip(bigger, dims)) if bigger is not None else None
    if growth == (0, 0):  # the model resizes its input itself (CrossViT): measured at the one size
        bigger = None
    if bigger is not None:
        if growth[0] > 0 and growth == (growth[0], growth[0]) and STRIDE_PROBE % growth[0] == 0:
            stride = STRIDE_PROBE // growth[0]
            return "" if stride == claimed else f"measured stride {stride}"
        return f"not one stride: +{STRIDE_PROBE} px input grows the map by {growth[0]} x {growth[1]}"
    # one size: the side is the input side / stride, rounded either way, or one less (a valid,
    # unpadded conv loses its border: pit's stride-8 patch conv maps 224 to 27)
    if all(s // claimed - 1 <= d <= -(-s // claimed) for s, d in zip(size, dims)):
        return ""
    return f"measured stride {size[0] / max(dims[0], 1):.3g} x {size[1] / max(dims[1], 1):.3g} (at one input size)"


def assert_info_matches(model: nn.Module, outs: list[torch.Tensor], x: torch.Tensor, what: str) -> None:
    """feature_info's channels and reductions against the tensors: channels read from each
    tensor, strides measured (stride_disagreement)."""
    info = model.feature_info
    layout = layout_of(model)
    chans, reds = list(info.channels()), list(info.reduction())
    if len(chans) != len(outs):
        raise AssertionError(f"{what}: feature_info describes {len(chans)} outputs, the model returned {len(outs)}")
    problems = []
    for j, (t, c) in enumerate(zip(outs, chans)):
        if t.dim() != 4:
            problems.append(f"output {j}: shape {tuple(t.shape)} is not a {layout} feature map")
        elif t.shape[channel_axis(layout)] != c:
            problems.append(f"output {j}: feature_info.channels() says {c}, the tensor has "
                            f"{t.shape[channel_axis(layout)]} ({layout} {tuple(t.shape)})")
    if not problems:
        size = tuple(x.shape[-2:])
        bigger = _bigger_maps(model, x, len(outs), layout)
        for j, (t, r) in enumerate(zip(outs, reds)):
            why = stride_disagreement(r, size, spatial(t, layout), bigger[j] if bigger else None)
            if why:
                problems.append(f"output {j}: feature_info.reduction() says {r}, {why} "
                                f"({size} input -> {spatial(t, layout)} map)")
    if problems:
        raise AssertionError(compare._listing(f"{what}: feature_info disagrees with the tensors returned", problems))


def tap_as_map(tap: torch.Tensor, feature: torch.Tensor, layout: str) -> torch.Tensor | None:
    """A module's raw output in the layout of ``feature`` when it can be that map: the same
    shape, the other channel order, or tokens (B, N, C) whose last H*W are the grid (prefix
    tokens first); None when no layout relates them."""
    if not isinstance(tap, torch.Tensor) or tap.shape[0] != feature.shape[0]:
        return None
    if tap.shape == feature.shape:
        return tap
    if tap.dim() == 4 and feature.dim() == 4:
        other = tap.permute(0, 3, 1, 2) if layout == "NCHW" else tap.permute(0, 2, 3, 1)
        return other if other.shape == feature.shape else None
    if tap.dim() == 3 and feature.dim() == 4:
        c = feature.shape[channel_axis(layout)]
        h, w = spatial(feature, layout)
        if tap.shape[-1] != c or tap.shape[1] < h * w:
            return None
        grid = tap[:, tap.shape[1] - h * w:].reshape(tap.shape[0], h, w, c)
        return grid.permute(0, 3, 1, 2) if layout == "NCHW" else grid
    return None


def same_values_any_order(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as multisets per sample (a module whose tokens the model reorders, e.g. Hiera's
    unrolled windows, still holds exactly the returned map's values)."""
    return bool(torch.equal(a.flatten(1).sort(dim=1).values, b.flatten(1).sort(dim=1).values))


@dataclass
class Budgeted:
    """A reference feature map with the model's own float32 error on it (None: exact)."""

    value: torch.Tensor
    err32: float | None = None

    def budget(self, tol: Tolerance) -> float:
        return error_budget(tol, self.err32 or 0.0, self.value.detach().abs().max().item())


def equal_level(t: torch.Tensor, refs: list[torch.Tensor]) -> int | None:
    """The index of the reference level ``t`` equals bitwise, if any (for messages)."""
    for i, r in enumerate(refs):
        if r.shape == t.shape and not t.is_meta and torch.equal(t, r):
            return i
    return None


def assert_maps_equal(outs: list[torch.Tensor], refs: list[Budgeted], levels: list[int], what: str,
                      ref_what: str, tol: Tolerance | None = None, all_refs: list[torch.Tensor] = ()) -> None:
    """outs[j] equals refs[j] (the reference at level levels[j]): bitwise, or within the
    budget of ``tol`` when given; shapes only on meta. A mismatch names the output, the
    level, the error, and the level the tensor does equal when there is one."""
    if len(outs) != len(refs):
        raise AssertionError(f"{what}: {len(outs)} tensors returned for {len(refs)} levels {levels}")
    problems = []
    for j, (t, ref) in enumerate(zip(outs, refs)):
        r = ref.value
        if tuple(t.shape) != tuple(r.shape):
            match = equal_level(t, list(all_refs))
            hint = f"; it equals level {match}" if match is not None else ""
            problems.append(f"output {j} (level {levels[j]}): shape {tuple(t.shape)}, {ref_what} has "
                            f"{tuple(r.shape)}{hint}")
            continue
        if t.is_meta or r.is_meta:
            continue
        if tol is None:
            if torch.equal(t, r):
                continue
            detail = compare.error_summary(t, r)
        else:
            err = (t.double() - r.double()).abs().max().item()
            budget = ref.budget(tol)
            if err <= budget:
                continue
            detail = (f"max abs err {err:.3g} > budget {describe_budget(tol, ref.err32 or 0.0, budget)} "
                      f"({compare.error_summary(t, r)})")
        match = equal_level(t, list(all_refs))
        hint = f"; it equals level {match}" if match is not None and match != levels[j] else ""
        problems.append(f"output {j} (level {levels[j]}) differs from {ref_what}: {detail}{hint}")
    if problems:
        raise AssertionError(compare._listing(what, problems))


def float32_error(out32: list[torch.Tensor], out64: list[torch.Tensor] | None) -> list[float | None]:
    """Per map, max |float32 - float64| (None where no float64 run could be made)."""
    if out64 is None:
        return [None] * len(out32)
    return [(a.double() - b.double()).abs().max().item() if a.shape == b.shape else None
            for a, b in zip(out32, out64)]
