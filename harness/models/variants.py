"""The create/pretrained matrix: load modes x head variants, as data.

Parameter ids follow the contract: ``<model>-<mode>-<head>``, e.g.
``hrnet_w18_small-pretrained-head_`` (pretrained, strict, ``head=''``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from harness.registry.model_families import ModelFamily

OTHER_NUM_CLASSES = 7


@dataclass(frozen=True)
class LoadMode:
    id: str
    pretrained: bool
    kwargs: Mapping = field(default_factory=lambda: MappingProxyType({}))

    @property
    def check(self) -> str:
        """The check family (marker) this mode belongs to."""
        return "pretrained" if self.pretrained else "create"


LOAD_MODES = (
    LoadMode("scratch", pretrained=False),
    LoadMode("pretrained", pretrained=True),
    LoadMode("pretrained_nonstrict", pretrained=True,
             kwargs=MappingProxyType({"pretrained_strict": False})),
)


@dataclass(frozen=True)
class HeadVariant:
    """contract: 'classes' (B, num_classes), 'features' (B, F), 'unpooled' (B, ..., >=3 dims),
    'custom' (model-specific head: only finite and batch-first)."""

    id: str
    kwargs: Mapping
    contract: str

    @property
    def changes_head(self) -> bool:
        return self.id != "default"


def head_variants(family: ModelFamily) -> list[HeadVariant]:
    variants = [
        HeadVariant("default", MappingProxyType({}), "classes"),
        HeadVariant("num_classes_0", MappingProxyType({"num_classes": 0}), "features"),
        HeadVariant(f"num_classes_{OTHER_NUM_CLASSES}",
                    MappingProxyType({"num_classes": OTHER_NUM_CLASSES}), "classes"),
    ]
    if family.unpooled_features:
        variants.append(HeadVariant("global_pool_", MappingProxyType({"num_classes": 0, "global_pool": ""}),
                                    "unpooled"))
    for key, values in family.head_kwargs.items():
        variants += [HeadVariant(f"{key}_{v}", MappingProxyType({key: v}), "custom") for v in values]
    return variants
