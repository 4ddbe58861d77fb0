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
