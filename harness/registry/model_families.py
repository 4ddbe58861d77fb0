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
import re
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
    GeometryException("nest_*", ("img_size",),
                      "Nest asserts img_size[0] == img_size[1] in its constructor ('Model only handles square "
                      "inputs'): its block aggregation tiles square grids only"),
    GeometryException("tresnet_*", ("input_odd",),
                      "TResNet's stem is SpaceToDepth(block_size=4), a view to (N, C, H/4, 4, W/4, 4): only "
                      "multiples of 4 fit (143x161: \"shape '[2, 3, 35, 4, 40, 4]' is invalid\")"),
    GeometryException("crossvit_*", ("img_size",),
                      "CrossViT derives each branch's size as img_size x img_scale, which is a patch multiple "
                      "only at the native size (img_size=(224, 224) already fails: 325 vs 337 tokens)"),
)


def geometry_exception(model_name: str, case_kind: str) -> GeometryException | None:
    """The first entry excusing this case kind for this model, else None."""
    for e in GEOMETRY_EXCEPTIONS:
        if case_kind in e.cases and _matches(model_name, e.models):
            return e
    return None


def load_interpolation(model_name: str) -> tuple[str, bool]:
    """(mode, antialias) the checkpoint loader resamples pos_embed with."""
    for e in GEOMETRY_EXCEPTIONS:
        if e.interpolation and _matches(model_name, e.models):
            return e.interpolation
    return ("bicubic", True)


@dataclass(frozen=True)
class FixedLayerScale:
    """Layer-scale parameters a model fixes by design whatever its layer-scale init value
    (the create family's init_value check excludes them and still checks the others)."""

    models: str       # comma-separated fnmatch patterns over model names
    params: str       # regex (re.search) over parameter names
    reason: str


FIXED_LAYER_SCALES: tuple[FixedLayerScale, ...] = (
    FixedLayerScale(
        "swiftformer_*", r"\.layer_scale\.gamma$",
        "SwiftFormer's ConvEncoder and LocalRepresentation build LayerScale2d(dim, 1) whatever "
        "layer_scale_init_value says (swiftformer.py; the reference implementation initialises them to ones "
        "too); the value reaches the attention blocks' layer_scale_1 / layer_scale_2, which are checked"),
)


def fixed_layer_scale(model_name: str, param: str) -> FixedLayerScale | None:
    """The entry that fixes this layer-scale parameter of this model by design, else None."""
    return next((e for e in FIXED_LAYER_SCALES if re.search(e.params, param) and _matches(model_name, e.models)),
                None)


def _matches(model_name: str, patterns: str) -> bool:
    """Whether a comma-separated list of fnmatch patterns (an exception's ``models``) names the model."""
    return any(fnmatch.fnmatchcase(model_name, p.strip()) for p in patterns.split(","))
