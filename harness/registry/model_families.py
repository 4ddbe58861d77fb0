"""Model families: the exceptions to what capability discovery (harness.models.capabilities)
reads from each model, one record per family, each with its reason (in the spirit of
PyTorch's OpInfo). A *model family* is a set of models sharing a constructor's conventions
(not a check family, not a checkpoint family).

Pools, head kwargs, attention pools, unpooled features and in_chans are discovered from the
model (its constructor signature and meta-device builds), never listed here. What stays is
what discovery cannot know: a head that accepts a pool but reads fixed tokens regardless.
Records are matched on the module that defines the model's entrypoint (robust across ~1,400
names), refined by name patterns.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class ModelFamily:
    """Exceptions to the discovered capabilities of one model family.

    head_kwargs: head kwarg values tested beyond the discovered ones (a value no literal in
        the constructor names).
    pool_types: pools reset_classifier must accept beyond the discovered ones.
    reset_configs: extra construction kwargs under which reset_classifier is also checked.
    unpooled_features: False where ``num_classes=0, global_pool=''`` is accepted but not part
        of the contract (distilled heads read fixed tokens by design).
    fixed_pool: the head reads fixed tokens whatever global_pool says, so only the model's own
        pool is exercised (a pool it accepts is not a variant).
    loads_pretrained: head kwargs whose variants must load the default checkpoint whatever
        their state_dict layout (a variant that only drops unused modules); elsewhere a
        variant whose layout differs may refuse a pretrained load loudly.
    """

    name: str
    modules: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ("*",)
    head_kwargs: Mapping[str, tuple] = field(default_factory=lambda: MappingProxyType({}))
    pool_types: tuple[str, ...] | None = None
    reset_configs: Mapping[str, Mapping] = field(default_factory=lambda: MappingProxyType({}))
    unpooled_features: bool = True
    fixed_pool: bool = False
    loads_pretrained: tuple[str, ...] = ()
    notes: str = ""


# Everything else the former table listed is discovered: HRNet's head='' / 'incre' (the
# literals its constructor compares `head` with), the ViT attention pool ('map' builds an
# attn_pool), the CNN pool sets, the distilled DeiT and EfficientViT-MiT / InceptionNeXt
# constructors that assert on other pools or on global_pool=''. Add a record only for what
# discovery cannot know, with the reason.
FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "hrnet", modules=("hrnet",), loads_pretrained=("head",),
        notes="head='' / 'incre' drop the unused parts of the classification head (feature extraction): the "
              "checkpoint covers every remaining tensor, so pretrained must load (timm 0.9.16 refused it strictly, "
              "fixed in 1.0.3)"),
)

DEFAULT_FAMILY = ModelFamily("default", notes="no exception: everything is discovered")


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
