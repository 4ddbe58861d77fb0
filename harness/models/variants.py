"""The create/pretrained matrix: load modes x head variants, as data.

Parameter ids follow the contract: ``<model>-<mode>-<head>``, e.g.
``hrnet_w18_small-pretrained-head_`` (pretrained, strict, ``head=''``). Head variants come
from the model's discovered capabilities (models.capabilities): every accepted
``global_pool`` (``global_pool_max``), head kwarg value (``head_incre``) and ``in_chans``
adaptation (``in_chans_1``), plus the model family's exceptions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from harness.models.capabilities import Capabilities
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
    modes: tuple[str, ...] = ()   # load modes this variant runs in (empty: all)
    kind: str = "head"            # 'head', 'pool' (global_pool=P) or 'in_chans'
    further: bool = False         # a pool beyond the representatives (further_pools): the slow scope

    @property
    def changes_head(self) -> bool:
        """Whether the classifier may differ from the checkpoint's (a head kwarg variant)."""
        return self.kind == "head" and self.id != "default"

    def applies_to(self, mode: LoadMode) -> bool:
        return not self.modes or mode.id in self.modes


# Pools and in_chans change no head kwarg the non-strict mode would treat differently:
# run them scratch and pretrained (strict), not a third time.
_POOL_MODES = ("scratch", "pretrained")


def head_variants(family: ModelFamily, caps: Capabilities | None = None) -> list[HeadVariant]:
    """The head variants of a model: the fixed ones, then what its capabilities discovered
    (the family table adds only its exceptions)."""
    unpooled = caps.unpooled if caps is not None else True  # without discovery: the family decides
    caps = caps if caps is not None else Capabilities()
    variants = [
        HeadVariant("default", MappingProxyType({}), "classes"),
        HeadVariant("num_classes_0", MappingProxyType({"num_classes": 0}), "features"),
        HeadVariant(f"num_classes_{OTHER_NUM_CLASSES}",
                    MappingProxyType({"num_classes": OTHER_NUM_CLASSES}), "classes"),
    ]
    if family.unpooled_features and unpooled:
        variants.append(HeadVariant("global_pool_", MappingProxyType({"num_classes": 0, "global_pool": ""}),
                                    "unpooled"))
    head_kwargs = {k: list(v) for k, v in caps.head_kwargs.items()}
    for key, values in family.head_kwargs.items():
        head_kwargs[key] = list(dict.fromkeys([*head_kwargs.get(key, []), *values]))
    for key, values in head_kwargs.items():
        variants += [HeadVariant(f"{key}_{v}", MappingProxyType({key: v}), "custom") for v in values]
    if not family.fixed_pool:
        further = further_pools(family, caps)
        variants += [HeadVariant(f"global_pool_{p}", MappingProxyType({"global_pool": p}), "classes",
                                 _POOL_MODES, "pool", p in further) for p in caps.pools]
    variants += [HeadVariant(f"in_chans_{c}", MappingProxyType({"in_chans": c}), "classes", _POOL_MODES, "in_chans")
                 for c in caps.in_chans]
    return variants


def further_pools(family: ModelFamily, caps: Capabilities) -> frozenset[str]:
    """The discovered pools whose own constructions (create/pretrained ``global_pool_P``, the
    reset configs built with P) are in the slow scope: all but the representatives, which
    are every attention pool (its own code path: the ViT ``'map '`` miss) and the first other
    one. The default scope still builds every pool: reset_classifier switches the default
    construction to each P and back, and compares it with create_model(global_pool=P) built
    on the meta device."""
    if family.fixed_pool:
        return frozenset()
    plain = [p for p in caps.pools if p not in caps.attn_pools]
    return frozenset(plain[1:])


def reset_configs(family: ModelFamily, caps: Capabilities) -> dict[str, dict]:
    """reset_classifier's constructions, config id -> create kwargs: the default, each
    discovered pool, the family's extra configs, and each of them again built with
    num_classes=0 (the suite's parametrizer and the fingerprints' steps both read this)."""
    pools = {} if family.fixed_pool else {f"global_pool_{p}": {"global_pool": p} for p in caps.pools}
    base = {"default": {}, **pools, **{k: dict(v) for k, v in family.reset_configs.items()}}
    headless = {("num_classes_0" if cid == "default" else f"num_classes_0-{cid}"): {**kw, "num_classes": 0}
                for cid, kw in base.items()}
    return {**base, **headless}


def reset_pools(family: ModelFamily, caps: Capabilities) -> tuple[str, ...]:
    """The pools reset_classifier switches between: the discovered ones and the model's own."""
    own = (caps.default_pool,)
    return tuple(p for p in (*(() if family.fixed_pool else caps.pools), *own) if p is not None)
