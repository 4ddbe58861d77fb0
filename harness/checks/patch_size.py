"""The patch_size check: load a tag's checkpoint family with the original geometry, a
changed patch_size and a changed img_size, and assert timm converted it correctly.

Asserted per case: the load succeeds; every tensor other than the geometry-dependent
ones (patch embedding, position embedding) equals the source; those have the shapes the
new geometry implies; the forward is finite with the right shape; with the original
geometry the logits equal the source's; with a larger patch the patch embedding is the
FlexiViT PI-resize of the checkpoint's (<w', resize(x)> == <w, x> for every patch x);
with a new img_size the prefix-token positions are kept.
Over --max-params (meta device): the geometry-changed model's shapes and output shape only.
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from harness.checks import compare
from harness.models import build
from harness.models.checkpoint_sources import pretrained_tags, tag_families
from harness.models.discovery import Geometry, changed_geometries, patch_geometry
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input, seed_for
from harness.weights.family_writers import WRITERS, UnsupportedLayout, load_overlay, write_family

# state_dict keys whose shape follows the geometry (everything else must load unchanged)
GEOMETRY_KEYS = re.compile(r"^(patch_embed\.proj\.weight|pos_embed)$")
PI_RTOL = 1e-3            # PI-resize identity, relative to max |<w, x>|
# (mode, antialias) of F.interpolate: timm's filters resample bicubic with antialias (a
# different bicubic kernel in torch even when upsampling), the .npz loader bilinear without
PI_MODES = (("bicubic", True), ("bicubic", False), ("bilinear", False), ("bilinear", True))


@dataclass(frozen=True)
class PatchCase:
    tag: str                  # 'model.tag'
    family: str
    geometry_id: str          # 'original', 'patch_size_32', 'img_size_160'
    kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    geometry: Geometry | None = None
    first_of_family: bool = field(default=True, compare=False)  # else in the slow scope (registry.scopes)

    def __repr__(self) -> str:
        return f"{self.tag}-{self.family}-{self.geometry_id}"


def patch_cases(model_name: str) -> list[PatchCase]:
    """One case per (pretrained tag, checkpoint family of that tag, geometry); the first tag of
    each family is marked (the default scope runs it, registry.scopes)."""
    geom = patch_geometry(model_name)
    if geom is None:
        return []
    cases, seen = [], set()
    for tag in pretrained_tags(model_name):
        for family in tag_families(tag).families:
            first = family not in seen
            seen.add(family)
            cases.append(PatchCase(tag, family, "original", {}, geom, first))
            cases += [PatchCase(tag, family, gid, kw, geom, first) for gid, kw in changed_geometries(geom).items()]
    return cases


def _fmt(kwargs: dict) -> str:
    return "".join(f", {k}={v!r}" for k, v in kwargs.items())


@dataclass
class PatchSource:
    state_dict: dict[str, torch.Tensor]
    path: Path
    logits: torch.Tensor


def make_patch_source(tag: str, family: str, workdir: Path) -> PatchSource:
    """The tag's deterministic model written in the family's layout (the model is first
    projected onto what the layout carries). UnsupportedLayout propagates."""
    model = build.create(tag)
    fill_deterministic(model, tag)
    path = write_family(family, model, tag, workdir / tag.replace("/", "_"))
    x = make_input(tag, (3, *model.patch_embed.img_size))
    with torch.no_grad():
        logits = model(x)
    return PatchSource({k: v.detach().clone() for k, v in model.state_dict().items()}, path, logits)


def expected_shapes(source_sd: dict[str, torch.Tensor], geom: Geometry, kwargs: dict) -> dict[str, tuple]:
    p = kwargs.get("patch_size", geom.patch)
    img = kwargs.get("img_size", geom.img)
    img = (img, img) if isinstance(img, int) else tuple(img)
    pe = source_sd["patch_embed.proj.weight"]
    pos = source_sd["pos_embed"]
    tokens = geom.prefix_tokens + (img[0] // p) * (img[1] // p)
    return {"patch_embed.proj.weight": (*pe.shape[:2], p, p), "pos_embed": (pos.shape[0], tokens, pos.shape[-1])}


def assert_geometry_tensors(model_sd, source_sd, geom: Geometry, kwargs: dict) -> None:
    """Non-geometry tensors equal the source; geometry tensors have the implied shapes."""
    problems = []
    for key, ref in source_sd.items():
        value = model_sd.get(key)
        if value is None:
            problems.append(f"{key}: missing from the loaded model")
        elif GEOMETRY_KEYS.match(key):
            continue
        elif tuple(value.shape) != tuple(ref.shape):
            problems.append(f"{key}: shape {tuple(value.shape)} vs source {tuple(ref.shape)}")
        elif not value.is_meta and not torch.equal(value.detach().cpu(), ref):
            problems.append(f"{key}: value differs from the source, {compare.error_summary(value, ref)}")
    for key, shape in expected_shapes(source_sd, geom, kwargs).items():
        got = tuple(model_sd[key].shape)
        if got != shape:
            problems.append(f"{key}: shape {got}, expected {shape} for {kwargs or 'the original geometry'}")
    if problems:
        raise AssertionError(compare._listing("tensors not loaded as expected", problems))


def assert_pi_resize(w_old: torch.Tensor, w_new: torch.Tensor, what: str) -> None:
    """FlexiViT PI-resize (timm.layers.resample_patch_embed), checked from its definition:
    for an upsampled patch, <w_new, resize(x)> == <w_old, x> for random patches x."""
    old, new = w_old.shape[-1], w_new.shape[-1]
    gen = torch.Generator().manual_seed(seed_for("pi-resize", str(old), str(new)))
    x = torch.randn(64, w_old.shape[1], old, old, generator=gen, dtype=torch.float64)
    ref = x.flatten(1) @ w_old.double().flatten(1).T
    scale = ref.abs().max().item()
    errors = {}
    for mode, antialias in PI_MODES:
        resized = F.interpolate(x, size=(new, new), mode=mode, antialias=antialias, align_corners=False)
        mode = f"{mode}{'+aa' if antialias else ''}"
        errors[mode] = ((resized.flatten(1) @ w_new.detach().double().flatten(1).T) - ref).abs().max().item() / scale
        if errors[mode] <= PI_RTOL:
            return
    detail = ", ".join(f"{m}: {e:.3g}" for m, e in errors.items())
    raise AssertionError(f"{what}: patch embedding {old}->{new} is not the PI-resize of the checkpoint's "
                         f"(<w', resize(x)> vs <w, x>, max rel err {detail}; tolerance {PI_RTOL})")


def check_patch_case(case: PatchCase, device: str, source: PatchSource | None) -> None:
    """One case. Raises AssertionError naming what differed."""
    if device == "meta":
        return check_structure(case)
    kwargs = case.kwargs
    desc = f"create_model({case.tag!r}{_fmt(kwargs)}, pretrained=True) from a {case.family} checkpoint"
    try:
        model = build.create(case.tag, device=device, pretrained=True,
                             pretrained_cfg_overlay=load_overlay(case.family, source.path), **kwargs)
    except Exception as exc:
        raise AssertionError(f"{desc} raised {type(exc).__name__}: {str(exc)[:600]}") from exc
    sd = model.state_dict()
    assert_geometry_tensors(sd, source.state_dict, case.geometry, kwargs)
    img = tuple(model.patch_embed.img_size)
    with torch.no_grad():
        out = model(make_input(case.tag, (3, *img), device=device)).cpu()
    expected = (BATCH_SIZE, model.num_classes or model.num_features)
    compare.assert_shape(out.shape, expected, f"{desc}: output")
    compare.assert_finite(out, f"{desc}: output")
    if case.geometry_id == "original":
        for key in ("patch_embed.proj.weight", "pos_embed"):
            if not torch.equal(sd[key].cpu(), source.state_dict[key]):
                raise AssertionError(f"{desc}: {key} differs from the source, "
                                     f"{compare.error_summary(sd[key], source.state_dict[key])}")
        compare.assert_close(out, source.logits, f"{desc}: logits vs the source model", rtol=0, atol=0)
    if "patch_size" in kwargs:
        assert_pi_resize(source.state_dict["patch_embed.proj.weight"], sd["patch_embed.proj.weight"], desc)
    n = case.geometry.prefix_tokens
    if n and not torch.equal(sd["pos_embed"][:, :n].cpu(), source.state_dict["pos_embed"][:, :n]):
        raise AssertionError(f"{desc}: the {n} prefix-token position(s) changed when resampling pos_embed")


def check_structure(case: PatchCase) -> None:
    """Over --max-params: the geometry-changed model builds on meta with the implied shapes."""
    desc = f"create_model({case.tag!r}{_fmt(case.kwargs)}) on meta"
    try:
        model = build.create(case.tag, device="meta", **case.kwargs)
        ref = build.create(case.tag, device="meta")
    except Exception as exc:
        raise AssertionError(f"{desc} raised {type(exc).__name__}: {exc}") from exc
    sd = model.state_dict()
    for key, shape in expected_shapes(ref.state_dict(), case.geometry, case.kwargs).items():
        compare.assert_shape(sd[key].shape, shape, f"{desc}: {key}")
    out = build.meta_forward(model, torch.empty((BATCH_SIZE, 3, *model.patch_embed.img_size), device="meta"))
    if out is not None:
        compare.assert_shape(out.shape, (BATCH_SIZE, model.num_classes or model.num_features), f"{desc}: output")


__all__ = ["PatchCase", "PatchSource", "patch_cases", "make_patch_source", "check_patch_case",
           "UnsupportedLayout"]


def coverage(models: list[str] | None = None) -> dict:
    """Pretrained tags of patch-embedding models (any model whose meta build has a Conv2d
    patch_embed.proj) and how many of them the suite collects, per checkpoint family."""
    models = sorted({t.split(".", 1)[0] for t in timm.list_pretrained()}) if models is None else models
    totals = dict(patch_models=0, patch_tags=0, covered_models=0, covered_tags=0, written_tag_families=0,
                  tag_families=0, uncovered_modules={})
    sources: dict[str, bool] = {}
    for name in models:
        module = build.entrypoint_module(name)
        if module not in sources:  # static prefilter: a module that never mentions patch_embed has none
            sources[module] = "patch_embed" in inspect.getsource(sys.modules[module])
        if not sources[module]:
            continue
        try:
            meta = build.create(name, device="meta")
        except Exception:  # noqa: BLE001 - not buildable on meta: counted as not a patch model
            continue
        proj = getattr(getattr(meta, "patch_embed", None), "proj", None)
        if not isinstance(proj, nn.Conv2d):
            continue
        tags = pretrained_tags(name)
        totals["patch_models"] += 1
        totals["patch_tags"] += len(tags)
        if patch_geometry(name) is None:
            mod = build.entrypoint_module(name).rsplit(".", 1)[-1]
            totals["uncovered_modules"][mod] = totals["uncovered_modules"].get(mod, 0) + len(tags)
            continue
        totals["covered_models"] += 1
        totals["covered_tags"] += len(tags)
        for tag in tags:
            for fam in tag_families(tag).families:
                totals["tag_families"] += 1
                totals["written_tag_families"] += fam in WRITERS
    return totals


def main(argv: list[str]) -> int:
    """python -m harness patch-coverage [MODELS]: coverage() as JSON."""
    parser = argparse.ArgumentParser(prog="python -m harness patch-coverage",
                                     description="pretrained tags of patch-embedding models and how many of them "
                                                 "the patch_size family collects, per checkpoint family")
    parser.add_argument("models", nargs="?", help="comma-separated model names (default: every pretrained model)")
    args = parser.parse_args(argv)
    print(json.dumps(coverage(args.models.split(",") if args.models else None), indent=1))
    return 0
