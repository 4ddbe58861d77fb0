"""The geometry check family: a model run at another input size than it was trained at,
as fine-tuning and dense prediction do. Every model comes from the harness's deterministic
checkpoint recorded at the native size, loaded the way users load one
(``create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...), **size kwargs)``),
and the test size (H, W) is non-square (H < W), so a confusion of the two axes anywhere
changes a shape or a value.

Cases (discovered from the model, harness.models.input_geometry):
- ``img_size_HxW``: built at img_size=(H, W) (deterministic weights): (B, num_classes),
  finite; a 4D feature map is (f(H), f(W)), f read from square builds at (H, H) and (W, W);
- ``input_HxW`` / ``input_odd_HxW`` (any-size models): the native model fed (H, W), a
  multiple of its stride and not: (B, num_classes), finite, map (f(H), f(W)) as above;
- ``pos_embed_HxW`` (an absolute pos_embed and a loader that resamples): loaded at (H, W)
  from the native checkpoint, every tensor whose shape did not change equals the checkpoint
  and the position table is the checkpoint's resampled as timm.layers.resample_abs_pos_embed
  documents it (prefix tokens kept, the grid F.interpolate'd bicubic with antialias to
  (H/p, W/p)), computed here independently;
- ``dynamic_native_HxW``: dynamic_img_size=True at its own non-square native size equals
  the static model;
- ``dynamic_HxW``: dynamic_img_size=True built at the native size and fed (H, W) equals
  the static model built at (H, W);
- ``dynamic_pad_HxW``: dynamic_img_pad=True fed a size that is not a multiple of the patch
  equals the same model fed the input zero-padded right and bottom (timm's definition);
- ``set_input_size_HxW``: set_input_size(img_size=(H, W)) equals the static model at (H, W).
Cases that do not apply to a model by design are skipped with the reason from
registry.model_families.GEOMETRY_EXCEPTIONS.
Values are compared within the static model's own float32 noise (GEOMETRY tolerance);
over --max-params everything runs on the meta device with shapes only.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.checks import compare, meta_device
from harness.checks.numerics import describe_budget, error_budget, float64_copy
from harness.models import build
from harness.models.input_geometry import GeometryFacts, odd_size, output_layout, spatial_dims
from harness.models.meta_limits import is_meta_limitation
from harness.registry import model_families
from harness.registry.tolerances import GEOMETRY
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input


def size_id(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def geometry_cases(facts: GeometryFacts) -> list[str]:
    """The case ids of a model, from what it declares."""
    hw = size_id(facts.size)
    cases = []
    if "img_size" in facts.kwargs:
        cases.append(f"img_size_{hw}")
        if facts.pos_embed is not None and facts.resamples_on_load:
            cases.append(f"pos_embed_{hw}")
    elif facts.free_size:
        cases += [f"input_{hw}", f"input_odd_{size_id(odd_size(facts.size, facts.stride))}"]
    if "dynamic_img_size" in facts.kwargs:
        cases += [f"dynamic_native_{hw}", f"dynamic_{hw}"]
        if "dynamic_img_pad" in facts.kwargs:
            cases.append(f"dynamic_pad_{size_id(odd_size(facts.size, facts.stride))}")
    if facts.set_input_size:
        cases.append(f"set_input_size_{hw}")
    return cases


def _call(model_name: str, kwargs: dict) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "pretrained_cfg_overlay")
    return f"create_model({model_name!r}{', ' + shown if shown else ''})"


def skip_on_meta_limit(exc: BaseException, what: str) -> None:
    meta_device.skip_on_meta_limit(exc, what, "construction and shapes")


@dataclass
class GeometryReference:
    """What several cases of one model share, built once per worker: the native checkpoint,
    the static model at the test size and its output (with its own float32 error)."""

    model: str
    device: str
    overlay: dict
    checkpoint: dict[str, torch.Tensor]
    facts: GeometryFacts
    cache: dict = field(default_factory=dict)

    def input(self, size: tuple[int, int]) -> torch.Tensor:
        if self.device == "meta":
            return torch.empty((BATCH_SIZE, 3, *size), device="meta")
        return make_input(self.model, (3, *size), device=self.device)

    def build(self, **kwargs) -> nn.Module:
        """create_model from the native checkpoint, a failure named with the call."""
        kwargs = dict(pretrained=True, pretrained_cfg_overlay=self.overlay, **kwargs)
        try:
            return build.create(self.model, device=self.device, **kwargs)
        except Exception as exc:
            raise AssertionError(f"{_call(self.model, kwargs)} raised {type(exc).__name__}: "
                                 f"{str(exc)[:500]}") from exc

    def native(self) -> nn.Module:
        """The deterministic model itself (the checkpoint's source)."""
        if self.device == "meta":
            return build.create(self.model, device="meta")
        return model_cache.deterministic(self.model, self.device)

    def static(self) -> tuple[nn.Module, "Output"]:
        """The model built at img_size=(H, W) from the native checkpoint, and its output at (H, W)."""
        if "static" not in self.cache:
            model = self.build(img_size=self.facts.size)
            self.cache["static"] = (model, forward_output(model, self.input(self.facts.size),
                                                          f"{_call(self.model, {'img_size': self.facts.size})}",
                                                          with_float64=True))
        return self.cache["static"]


@dataclass
class Output:
    value: torch.Tensor
    err32: float = 0.0


def forward_output(model: nn.Module, x: torch.Tensor, what: str, with_float64: bool = False) -> Output:
    """model(x), its shape and finiteness checked; with its float32 error when asked."""
    model64 = float64_copy(model) if with_float64 and not x.is_meta else None
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        if x.is_meta:
            skip_on_meta_limit(exc, what)
        raise AssertionError(f"{what}: forward at {size_id(tuple(x.shape[-2:]))} raised "
                             f"{type(exc).__name__}: {str(exc)[:500]}") from exc
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what}: forward returned {type(out).__name__}, expected a tensor")
    expected = (x.shape[0], getattr(model, "num_classes", 0) or getattr(model, "num_features", out.shape[-1]))
    compare.assert_shape(out.shape, expected, f"{what}: output at {size_id(tuple(x.shape[-2:]))}")
    compare.assert_finite(out, f"{what}: output")
    err = 0.0
    if model64 is not None:
        try:
            with torch.no_grad():
                out64 = model64(x.double())
            err = (out.double() - out64).abs().max().item()
        except Exception:  # noqa: BLE001 - no float64 run: the budget is its floor
            err = 0.0
    return Output(out, err)


def assert_same_output(got: torch.Tensor, ref: Output, what: str, ref_what: str) -> None:
    """``got`` equals the reference output within GEOMETRY's budget on its float32 error."""
    compare.assert_shape(got.shape, ref.value.shape, what)
    if got.is_meta:
        return
    err = (got.double() - ref.value.double()).abs().max().item()
    budget = error_budget(GEOMETRY, ref.err32, ref.value.abs().max().item())
    if not err <= budget:
        raise AssertionError(f"{what} differs from {ref_what}: max abs err {err:.3g}, budget "
                             f"{describe_budget(GEOMETRY, ref.err32, budget)} "
                             f"({compare.error_summary(got, ref.value)})")


# ---------------------------------------------------------------- shapes that tell H from W

def map_dims(model: nn.Module, size: tuple[int, int], device: str) -> tuple[int, int] | None:
    """forward_features' spatial size at ``size`` (zeros in, shapes read); None for token outputs."""
    with torch.no_grad():
        out = model.forward_features(torch.zeros((1, 3, *size), device=device))
    return spatial_dims(out, output_layout(model, out)) if isinstance(out, torch.Tensor) else None


def assert_axes_kept(model_at: Callable[[tuple[int, int], str], nn.Module], size: tuple[int, int], what: str,
                     device: str) -> None:
    """A map of an (H, W) input is (f(H), f(W)): f read from the square inputs (H, H) and
    (W, W) (every conv stack and patch grid treats the axes alike and independently), so a
    transposed or mixed-up axis changes the shape. ``model_at(s, device)`` gives the model for
    size s (the same model for any-size models, a rebuild for img_size models). Shapes are
    read on the meta device; a model that cannot run there (a meta-kernel limitation, a CPU
    tensor it keeps outside its buffers) is measured on ``device`` instead."""
    h, w = size
    sizes = (size, (h, h), (w, w))
    try:
        dims = [map_dims(model_at(s, "meta"), s, "meta") for s in sizes]
    except Exception as exc:  # noqa: BLE001 - only meta limits are excused, and then measured for real
        if not is_meta_limitation(exc):
            raise AssertionError(f"{what}: forward_features on the meta device raised {type(exc).__name__}: "
                                 f"{str(exc)[:300]}") from exc
        if device == "meta":
            return
        dims = [map_dims(model_at(s, device), s, device) for s in sizes]
    got, fh, fw = dims
    if got is None:
        return
    want = (fh[0], fw[1])
    if got != want:
        raise AssertionError(f"{what}: forward_features map is {got[0]}x{got[1]} for a {h}x{w} input; the "
                             f"{h}x{h} and {w}x{w} inputs give {fh[0]} and {fw[1]} rows/columns, so (H, W) "
                             f"should give {want[0]}x{want[1]}")


# ---------------------------------------------------------------- the cases

def check_geometry(ref: GeometryReference, case: str) -> None:
    kind = case.rsplit("_", 1)[0]
    handlers = {"img_size": _check_img_size, "input": _check_input, "input_odd": _check_input,
                "dynamic_native": _check_dynamic_native, "dynamic": _check_dynamic,
                "dynamic_pad": _check_dynamic_pad, "set_input_size": _check_set_input_size,
                "pos_embed": _check_pos_embed}
    if kind not in handlers:
        raise ValueError(f"unknown geometry case {case!r}")
    excused = model_families.geometry_exception(ref.model, kind)
    if excused is not None:
        pytest.skip(f"{kind} does not apply to {ref.model}: {excused.reason}")
    size = tuple(int(s) for s in case.rsplit("_", 1)[1].split("x"))
    handlers[kind](ref, size)


def _check_img_size(ref: GeometryReference, size: tuple[int, int]) -> None:
    """Built at img_size=(H, W) (deterministic weights, no checkpoint: any model that takes the
    knob), run at (H, W); the map keeps the axes."""
    what = _call(ref.model, {"img_size": size})
    try:
        model = build.create(ref.model, device=ref.device, img_size=size)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {str(exc)[:500]}") from exc
    if ref.device != "meta":
        fill_deterministic(model, ref.model)
    forward_output(model, ref.input(size), what)
    assert_axes_kept(lambda s, d: build.create(ref.model, device=d, img_size=s), size, what, ref.device)


def _check_input(ref: GeometryReference, size: tuple[int, int]) -> None:
    model = ref.native()
    what = f"{ref.model} (native {size_id(ref.facts.native)}) fed a {size_id(size)} input"
    forward_output(model, ref.input(size), what)
    assert_axes_kept(lambda s, d: model if d == ref.device else copy.deepcopy(model).to(d), size, what, ref.device)


def _check_dynamic_native(ref: GeometryReference, size: tuple[int, int]) -> None:
    _, static = ref.static()
    model = ref.build(img_size=size, dynamic_img_size=True)
    what = _call(ref.model, {"img_size": size, "dynamic_img_size": True})
    out = forward_output(model, ref.input(size), what)
    assert_same_output(out.value, static, f"{what} at its own size {size_id(size)}",
                       f"the static model built at img_size={size}")


def _check_dynamic(ref: GeometryReference, size: tuple[int, int]) -> None:
    _, static = ref.static()
    model = ref.build(dynamic_img_size=True)
    what = f"{_call(ref.model, {'dynamic_img_size': True})} (native {size_id(ref.facts.native)}) fed {size_id(size)}"
    out = forward_output(model, ref.input(size), what)
    assert_same_output(out.value, static, what, f"the static model built at img_size={size}")


def _check_dynamic_pad(ref: GeometryReference, size: tuple[int, int]) -> None:
    model = ref.build(dynamic_img_size=True, dynamic_img_pad=True)
    what = _call(ref.model, {"dynamic_img_size": True, "dynamic_img_pad": True})
    x = ref.input(size)
    out = forward_output(model, x, f"{what} fed {size_id(size)}")
    p = ref.facts.stride
    pad_h, pad_w = (-size[0]) % p, (-size[1]) % p
    padded = F.pad(x, (0, pad_w, 0, pad_h))
    grown = size_id(tuple(padded.shape[-2:]))
    ref_out = forward_output(model, padded, f"{what} fed the input zero-padded to {grown}")
    if not out.value.is_meta:  # the same computation: bitwise
        compare.assert_close(out.value, ref_out.value, f"{what} fed {size_id(size)} (padded inside by {pad_h} rows, "
                             f"{pad_w} columns) vs the same model fed the input zero-padded right and bottom to "
                             f"{grown}", rtol=0, atol=0)


def _check_set_input_size(ref: GeometryReference, size: tuple[int, int]) -> None:
    _, static = ref.static()
    model = ref.native()
    what = f"{ref.model} (native {size_id(ref.facts.native)}) after set_input_size(img_size={size})"
    try:
        model.set_input_size(img_size=size)
    except Exception as exc:
        raise AssertionError(f"{ref.model}.set_input_size(img_size={size}) raised {type(exc).__name__}: "
                             f"{str(exc)[:400]}") from exc
    out = forward_output(model, ref.input(size), what)
    assert_same_output(out.value, static, what, f"the static model built at img_size={size}")


def resample_definition(posemb: torch.Tensor, old: tuple[int, int], new: tuple[int, int], prefix: int,
                        dtype: torch.dtype = torch.float32, mode: str = "bicubic",
                        antialias: bool = True) -> torch.Tensor:
    """timm.layers.resample_abs_pos_embed as documented, written here from its definition:
    the prefix tokens kept, the (old_h, old_w) grid of embeddings interpolated (bicubic with
    antialias by default) to (new_h, new_w), rows first, in float32."""
    head, grid = posemb[:, :prefix], posemb[:, prefix:]
    c = grid.shape[-1]
    image = grid.to(dtype).reshape(1, old[0], old[1], c).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=new, mode=mode, antialias=antialias, align_corners=False)
    return torch.cat([head.to(dtype), image.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], c)], dim=1)


def _assert_loaded(model: nn.Module, checkpoint: dict[str, torch.Tensor], what: str) -> None:
    """Every checkpoint tensor whose shape the new size did not change was loaded unchanged."""
    sd = model.state_dict()
    problems = []
    for key, value in checkpoint.items():
        got = sd.get(key)
        if got is None:
            problems.append(f"{key}: missing from the model")
        elif tuple(got.shape) == tuple(value.shape) and not got.is_meta and not torch.equal(got.cpu(), value.cpu()):
            problems.append(f"{key}: differs from the checkpoint, {compare.error_summary(got, value)}")
    if problems:
        raise AssertionError(compare._listing(f"{what}: tensors not loaded from the native checkpoint", problems))


def _check_pos_embed(ref: GeometryReference, size: tuple[int, int]) -> None:
    """Loaded at img_size=(H, W) from the native checkpoint: every other tensor unchanged, the
    position table the documented resample of the checkpoint's, the forward (B, classes)."""
    model, _ = ref.static()
    _assert_loaded(model, ref.checkpoint, _call(ref.model, {"img_size": size, "pretrained": True}))
    prefix, gh, gw = ref.facts.pos_embed
    p = ref.facts.stride
    new = (size[0] // p, size[1] // p)
    got = model.state_dict()["pos_embed"]
    source = ref.checkpoint["pos_embed"]
    what = f"pos_embed of {_call(ref.model, {'img_size': size, 'pretrained': True})}"
    compare.assert_shape(got.shape, (1, prefix + new[0] * new[1], source.shape[-1]), what)
    if got.is_meta:
        return
    mode, antialias = model_families.load_interpolation(ref.model)
    want = resample_definition(source, (gh, gw), new, prefix, mode=mode, antialias=antialias)
    want64 = resample_definition(source, (gh, gw), new, prefix, torch.float64, mode, antialias)
    if prefix and not torch.equal(got[:, :prefix].cpu(), source[:, :prefix]):
        raise AssertionError(f"{what}: the {prefix} prefix-token position(s) changed when resampling")
    transposed = (resample_definition(source, (gh, gw), new[::-1], prefix, mode=mode, antialias=antialias)
                  if new[0] != new[1] else None)
    err = (got.double().cpu() - want64).abs().max().item()
    err32 = (want.double() - want64).abs().max().item()
    budget = error_budget(GEOMETRY, err32, want64.abs().max().item())
    if not err <= budget:
        hint = ""
        if transposed is not None and (got.double().cpu() - transposed.double()).abs().max().item() <= budget:
            hint = f"; it is the resample to {new[1]}x{new[0]} (H and W swapped)"
        raise AssertionError(f"{what}: not the checkpoint's {gh}x{gw} grid resampled to {new[0]}x{new[1]} "
                             f"({mode}{', antialias' if antialias else ''}): max abs err {err:.3g}, budget "
                             f"{describe_budget(GEOMETRY, err32, budget)}{hint}")


_references: dict[tuple, GeometryReference] = {}


def reference(model_name: str, device: str, facts: GeometryFacts, overlay: dict,
              checkpoint: dict[str, torch.Tensor], cache_key: str) -> GeometryReference:
    """The model's GeometryReference (one kept per worker, the last asked for)."""
    key = (model_name, device, cache_key)
    if key not in _references:
        _references.clear()
        _references[key] = GeometryReference(model_name, device, overlay, checkpoint, facts)
    return _references[key]
