"""Model families: per-family model metadata, one record per family (in the spirit of
PyTorch's OpInfo). A *model family* is a set of models sharing a constructor's
conventions (not a check family, not a checkpoint family).

Tests are generic templates; everything model-specific lives here as data: which extra
head kwargs a constructor takes, which pool types reset_classifier accepts, which
construction configs carry an attention pool. Records are matched on the module that
defines the model's entrypoint (robust across ~1,400 names), refined by name patterns.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

CNN_POOLS = ("avg", "max", "avgmax", "catavgmax")


@dataclass(frozen=True)
class ModelFamily:
    """What the generic checks need to know about one model family.

    head_kwargs: constructor kwargs beyond num_classes/global_pool that select a head,
        each value tested in the create/pretrained matrix (HRNet's ``head``).
    pool_types: pools ``reset_classifier(N, pool)`` must accept; ``None`` means only the
        model's own pool type is exercised (families we have not characterised).
    reset_configs: extra construction kwargs under which reset_classifier is also checked,
        e.g. a ViT built with an attention pool (``global_pool='map'``).
    unpooled_features: whether ``num_classes=0, global_pool=''`` is part of the model's
        contract (distilled heads read fixed tokens and reject it by design).
    """

    name: str
    modules: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ("*",)
    head_kwargs: Mapping[str, tuple] = field(default_factory=lambda: MappingProxyType({}))
    pool_types: tuple[str, ...] | None = None
    reset_configs: Mapping[str, Mapping] = field(default_factory=lambda: MappingProxyType({}))
    unpooled_features: bool = True
    notes: str = ""


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "hrnet", modules=("hrnet",), head_kwargs=MappingProxyType({"head": ("", "incre")}),
        pool_types=CNN_POOLS,
        notes="head='' / 'incre' drop parts of the classification head; pretrained must "
              "still load (strictly on the backbone).",
    ),
    ModelFamily(
        "vit", modules=("vision_transformer",), pool_types=("avg",),
        reset_configs=MappingProxyType({"global_pool_map": MappingProxyType({"global_pool": "map"})}),
        notes="an attention pool (global_pool='map') cannot be added by reset_classifier, "
              "but must survive a reset that keeps 'map'; 'token' needs a class token, so it "
              "is exercised only where it is the model's own pool.",
    ),
    ModelFamily("deit_distilled", modules=("deit",), patterns=("*distilled*",), unpooled_features=False,
               notes="the distilled head reads the class and distillation tokens: no other pool"),
    ModelFamily("deit", modules=("deit",), pool_types=("avg",)),
    ModelFamily("resnet", modules=("resnet", "resnetv2"), pool_types=CNN_POOLS),
    ModelFamily("cspnet", modules=("cspnet",), pool_types=CNN_POOLS),
    ModelFamily("dpn", modules=("dpn",), pool_types=CNN_POOLS),
    ModelFamily("regnet", modules=("regnet",), pool_types=CNN_POOLS),
    ModelFamily("byobnet", modules=("byobnet",), pool_types=("avg", "max", "avgmax")),
    ModelFamily("efficientnet", modules=("efficientnet", "mobilenetv3"), pool_types=("avg", "max")),
    ModelFamily("convnext", modules=("convnext",), pool_types=("avg", "max")),
    ModelFamily("levit", modules=("levit",), pool_types=("avg",)),
    ModelFamily("no_unpooled", modules=("efficientvit_mit", "inception_next"), unpooled_features=False,
               notes="constructors assert 'Cannot disable pooling' for global_pool=''"),
)

DEFAULT_FAMILY = ModelFamily("default", notes="not characterised: only the model's own pool")


# Model modules whose models take patch_size/img_size and resample a checkpoint on load
# (the patch_size family; a probe on the meta device confirms each model).
PATCH_SIZE_MODULES: tuple[str, ...] = ("timm.models.vision_transformer", "timm.models.deit", "timm.models.eva")


def register_family(family: ModelFamily) -> None:
    """Put a record in front of the table (tests register their toys' family)."""
    global FAMILIES
    if family not in FAMILIES:
        FAMILIES = (family,) + FAMILIES


def register_patch_size_module(module: str) -> None:
    global PATCH_SIZE_MODULES
    if module not in PATCH_SIZE_MODULES:
        PATCH_SIZE_MODULES = PATCH_SIZE_MODULES + (module,)


def family_for(model_name: str, module: str) -> ModelFamily:
    """The first record whose module and name patterns match, else DEFAULT_FAMILY."""
    short = module.rsplit(".", 1)[-1]
    for info in FAMILIES:
        if short in info.modules and any(fnmatch.fnmatchcase(model_name, p) for p in info.patterns):
            return info
    return DEFAULT_FAMILY


# Models timm itself does not script (tests/test_models.py EXCLUDE_JIT_FILTERS, timm 1.0.31):
# the features check family scripts a features model only where timm supports TorchScript.
SCRIPTING_EXCEPTIONS: tuple[tuple[str, str], ...] = tuple(
    (pattern, "excluded from TorchScript by timm's own tests (tests/test_models.py EXCLUDE_JIT_FILTERS)")
    for pattern in ("hiera_*", "*naflex*", "*_7b_*", "hrnet*", "dpn*", "densenet*", "selecsls*", "gemma4_vit*"))


def scripting_exception(model_name: str) -> str | None:
    """Why the model is not scripted, or None where timm supports TorchScript for it."""
    return next((why for pattern, why in SCRIPTING_EXCEPTIONS if fnmatch.fnmatchcase(model_name, pattern)), None)


@dataclass(frozen=True)
class GeometryException:
    """Geometry cases that do not apply to some models by design, each with the reason:
    the case is collected and skipped with the reason. ``interpolation``: the (mode,
    antialias) a model's checkpoint loader resamples pos_embed with, where it is not
    resample_abs_pos_embed's default (bicubic, antialias)."""

    models: str                    # comma-separated fnmatch patterns over model names
    cases: tuple[str, ...]         # case kinds: img_size, dynamic, dynamic_native, set_input_size, pos_embed, ...
    reason: str
    interpolation: tuple[str, bool] | None = None


_WINDOWS = ("shifted windows follow the grid: a model built at (H, W) shrinks its window shift where the "
            "grid is no larger than the window, set_input_size() rescales the window with the image by "
            "default, and dynamic_img_size pads to the native window, so the three compute different "
            "functions by design (measured on swin_tiny_patch4_window7_224 at 224x448: max abs diff 4e-3)")

GEOMETRY_EXCEPTIONS: tuple[GeometryException, ...] = (
    GeometryException("swin*,swinv2*", ("dynamic", "set_input_size"), _WINDOWS),
    GeometryException(
        "flexivit_*", ("dynamic", "set_input_size"),
        "FlexiViT checkpoints are resampled bilinear without antialias on load (_create_vision_transformer "
        "passes interpolation='bilinear', antialias=False to checkpoint_filter_fn), while dynamic_img_size "
        "and set_input_size resample bicubic with antialias: by design not the same position table",
        interpolation=("bilinear", False)),
    GeometryException("efficientformer_l*", ("img_size",),
                      "EfficientFormer (v1) accepts img_size but does not use it: its attention biases are "
                      "fixed at 7x7, i.e. 224x224 input (the constructor's comment says so)"),
    GeometryException("convit_*", ("img_size",),
                      "ConViT's GPSA derives its grid as int(N ** .5): square grids only by construction"),
    GeometryException("mvitv2_*", ("img_size",),
                      "MViTv2's MultiScaleAttention asserts feat_size[0] == feat_size[1]: square inputs only"),
    GeometryException("hrnet_*", ("input_odd",),
                      "HRNet does not pad: its fuse layers upsample lower branches by exact powers of 2 and add "
                      "them, so only multiples of 32 fit (143x161: 'The size of tensor a (41) must match the size "
                      "of tensor b (42)')"),
    GeometryException("dla*", ("input_odd",),
                      "DLA does not pad: its IDA-up trees add upsampled lower levels to higher ones, so only "
                      "multiples of 32 fit (143x161: 'The size of tensor a (41) must match the size of tensor b "
                      "(40)')"),
    GeometryException("crossvit_*", ("img_size",),
                      "CrossViT derives each branch's size as img_size x img_scale, which is a patch multiple "
                      "only at the native size (img_size=(224, 224) already fails: 325 vs 337 tokens)"),
)


def geometry_exception(model_name: str, case_kind: str) -> GeometryException | None:
    """The first entry excusing this case kind for this model, else None."""
    for e in GEOMETRY_EXCEPTIONS:
        if case_kind in e.cases and any(fnmatch.fnmatchcase(model_name, p.strip()) for p in e.models.split(",")):
            return e
    return None


def load_interpolation(model_name: str) -> tuple[str, bool]:
    """(mode, antialias) the checkpoint loader resamples pos_embed with."""
    for e in GEOMETRY_EXCEPTIONS:
        if e.interpolation and any(fnmatch.fnmatchcase(model_name, p.strip()) for p in e.models.split(",")):
            return e.interpolation
    return ("bicubic", True)
