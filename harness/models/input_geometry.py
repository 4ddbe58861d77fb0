"""Which input-size contracts a model declares, read on the meta device (part of the
cached facts): the size knobs its constructor takes (``img_size``, ``dynamic_img_size``,
``dynamic_img_pad``), ``set_input_size()``, an absolute position embedding on a patch
grid, the spatial stride of ``forward_features``, and the non-square test size.

Discovery never decides that a declared contract is missing because it fails: a
constructor that takes ``img_size`` is tested at another size whether or not the probe
of candidate sizes found one that builds (the first candidate is then used and the check
reports the failure). The probe only picks a size.
"""
from __future__ import annotations

import inspect
import math
import sys
from dataclasses import asdict, dataclass

import torch
from torch import nn

from harness.models import build
from harness.models.meta_limits import is_meta_limitation

SIZE_KWARGS: tuple[str, ...] = ("img_size", "dynamic_img_size", "dynamic_img_pad")
# non-square test grids, in units of the model's stride, as fractions of its native grid:
# smaller than native (cheap) first, larger ones for models whose windows need them
GRID_FRACTIONS: tuple[tuple[float, float], ...] = ((0.5, 0.75), (0.75, 1.0), (1.0, 1.5), (1.0, 2.0))


@dataclass(frozen=True)
class GeometryFacts:
    native: tuple[int, int]              # (H, W) of the pretrained cfg's input_size
    kwargs: tuple[str, ...]              # which of SIZE_KWARGS the constructor takes
    set_input_size: bool
    fixed: bool                          # the cfg's fixed_input_size
    stride: int                          # spatial stride of the test grid (patch, or forward_features' stride)
    size: tuple[int, int]                # the non-square test size (H != W), multiples of stride
    pos_embed: tuple[int, int, int] | None = None  # (prefix tokens, grid h, grid w) of an absolute pos_embed
    output_fmt: str = "NCHW"             # forward_features layout (NCHW, NHWC, or NLC tokens)
    resamples_on_load: bool = False      # the model's module uses timm.layers.resample_abs_pos_embed
    probe_error: str = ""                # no candidate size built on meta (first candidate used)

    @staticmethod
    def from_json(data: dict | None) -> "GeometryFacts | None":
        if not data:
            return None
        pos = data.get("pos_embed")
        return GeometryFacts(**{**data, "native": tuple(data["native"]), "kwargs": tuple(data["kwargs"]),
                                "size": tuple(data["size"]), "pos_embed": tuple(pos) if pos else None})

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def free_size(self) -> bool:
        """Any input size, no rebuild: no img_size knob and no fixed input size declared."""
        return "img_size" not in self.kwargs and not self.fixed


def accepts_kwarg(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes ``name``: its __init__ names it, or passes **kwargs on to a
    base class whose __init__ does (timm's distilled / hybrid subclasses do)."""
    for klass in inspect.getmro(cls):
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        if name in params:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return False
    return False


def abs_pos_embed(model: nn.Module) -> tuple[int, int, int] | None:
    """(prefix tokens, grid h, grid w) of an absolute position embedding (1, prefix + h*w, C)
    on the patch grid, else None."""
    pos = getattr(model, "pos_embed", None)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if not isinstance(pos, nn.Parameter) or pos.dim() != 3 or grid is None:
        return None
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 0))
    gh, gw = (int(g) for g in grid)
    return (prefix, gh, gw) if pos.shape[1] == prefix + gh * gw else None


def resamples_on_load(model_name: str) -> bool:
    """Whether the module defining the model uses timm.layers.resample_abs_pos_embed (its
    checkpoint filter then resamples a position table recorded at another grid)."""
    from timm.layers import resample_abs_pos_embed

    module = sys.modules.get(build.entrypoint_module(model_name))
    return any(v is resample_abs_pos_embed for v in vars(module).values()) if module else False


def output_layout(model: nn.Module, out: torch.Tensor | None) -> str:
    """forward_features' layout: NCHW / NHWC (4D, by the model's output_fmt) or NLC."""
    if out is None or not isinstance(out, torch.Tensor) or out.dim() != 4:
        return "NLC"
    return "NHWC" if str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC") else "NCHW"


def spatial_dims(out: torch.Tensor, layout: str) -> tuple[int, int] | None:
    if layout == "NCHW":
        return tuple(out.shape[-2:])
    if layout == "NHWC":
        return tuple(out.shape[1:3])
    return None


def model_stride(model: nn.Module, native: tuple[int, int], features: torch.Tensor | None, layout: str) -> int:
    """The patch size of a patch-embedding model, else forward_features' stride at the
    native size (measured on meta), else 32."""
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None:
        p = tuple(patch) if isinstance(patch, (tuple, list)) else (patch, patch)
        if p[0] == p[1] and int(p[0]) > 0:
            return int(p[0])
    dims = spatial_dims(features, layout) if features is not None else None
    if dims and dims[0] > 0:
        return max(1, round(native[0] / dims[0]))
    return 32


def candidate_sizes(native: tuple[int, int], stride: int) -> list[tuple[int, int]]:
    """Non-square sizes (H < W), multiples of the stride, from GRID_FRACTIONS."""
    gh, gw = native[0] / stride, native[1] / stride
    sizes = []
    for fh, fw in GRID_FRACTIONS:
        h, w = max(2, round(gh * fh)), max(3, round(gw * fw))
        if w <= h:
            w = h + 1
        size = (h * stride, w * stride)
        if size not in sizes:
            sizes.append(size)
    return sizes


def _at_size(model_name: str, size: tuple[int, int], rebuild: bool,
             native_params: dict[str, tuple]) -> tuple[str, bool]:
    """(error, same parameter shapes): whether the model (rebuilt with img_size=size if
    rebuild) runs a meta forward at size ('' when it does; a meta-kernel limitation counts
    as running, the check will tell), and whether its parameters other than pos_embed keep
    the native shapes (so the native checkpoint fits it without resampling anything else)."""
    try:
        model = build.create(model_name, device="meta", **({"img_size": size} if rebuild else {}))
        same = all(native_params.get(k) == tuple(v.shape) for k, v in model.named_parameters() if k != "pos_embed")
        with torch.no_grad():
            model(torch.empty((1, 3, *size), device="meta"))
    except Exception as exc:  # noqa: BLE001 - the probe picks a size; the check reports failures
        if is_meta_limitation(exc):
            return "", same
        return f"{type(exc).__name__}: {exc}"[:300], False
    return "", same


def choose_size(model_name: str, candidates: list[tuple[int, int]], rebuild: bool,
                native_params: dict[str, tuple]) -> tuple[tuple[int, int], str]:
    """The first candidate at which the model runs on meta with the native parameter shapes
    (windowed models change their relative-position tables at sizes their windows do not
    tile), else the first it runs at, else the first candidate with its error."""
    first_error, runs = "", None
    for size in candidates:
        error, same = _at_size(model_name, size, rebuild, native_params)
        if not error and same:
            return size, ""
        if not error and runs is None:
            runs = size
        first_error = first_error or error
    return (runs, "") if runs is not None else (candidates[0], first_error)


def geometry_facts(model_name: str, model: nn.Module) -> GeometryFacts:
    """What ``model`` (built on the meta device) declares about its input size."""
    cfg = build.pretrained_cfg(model_name)
    native = tuple(int(s) for s in (cfg.get("input_size") or (3, 224, 224))[1:])
    kwargs = tuple(k for k in SIZE_KWARGS if accepts_kwarg(type(model), k))
    try:
        with torch.no_grad():
            features = model.forward_features(torch.empty((1, 3, *native), device="meta"))
    except Exception:  # noqa: BLE001 - shapes unknown on meta: the stride falls back to the patch or 32
        features = None
    features = features if isinstance(features, torch.Tensor) else None
    layout = output_layout(model, features)
    stride = model_stride(model, native, features, layout)
    fixed = bool(cfg.get("fixed_input_size"))
    rebuild = "img_size" in kwargs
    candidates = candidate_sizes(native, stride)
    params = {k: tuple(v.shape) for k, v in model.named_parameters()}
    size, error = (choose_size(model_name, candidates, rebuild, params) if rebuild or not fixed
                   else (candidates[0], ""))
    return GeometryFacts(native, kwargs, callable(getattr(model, "set_input_size", None)), fixed, stride, size,
                         abs_pos_embed(model), layout, resamples_on_load(model_name), probe_error=error)


def odd_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """A size near ``size`` that is not a multiple of the stride in either dimension."""
    return (size[0] + max(1, stride // 2 - 1), size[1] + 1) if stride > 1 else size


def ceil_grid(size: tuple[int, int], stride: int) -> tuple[int, int]:
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
