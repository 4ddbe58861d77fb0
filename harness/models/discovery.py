"""What a model supports, read from the model itself (meta-device builds), never from a
hand list: the modules reparameterize_model would touch, and the patch geometry of a
patch-embedding model. Results feed the cached facts (harness.models.facts) or are
cached per process."""
from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from harness.models import build
from harness.registry import model_families

# the attribute names timm.utils.model.reparameterize_model looks for on each child, in
# its order (the same three names in 0.9.16 through 1.0.31)
REPARAM_METHODS: tuple[str, ...] = ("fuse", "reparameterize", "switch_to_deploy")


def reparam_sites(model: nn.Module) -> tuple[str, ...]:
    """'path:Class.method' for each module reparameterize_model would call a method on.
    The root is excluded, as reparameterize_model only visits children."""
    sites = []
    for name, module in model.named_modules():
        method = next((m for m in REPARAM_METHODS if hasattr(module, m)), None) if name else None
        if method is not None:
            sites.append(f"{name}:{type(module).__name__}.{method}")
    return tuple(sites)


def reparameterize_model(model: nn.Module) -> nn.Module:
    """timm's reparameterize_model, on a deep copy (timm.utils.model has had it since 0.9.16).

    A meta-device model is reparameterized under the meta device context, so the modules
    fuse() creates (on the default device otherwise) match the tensors assigned to them."""
    from timm.utils.model import reparameterize_model as timm_reparameterize

    on_meta = any(t.is_meta for t in model.parameters())
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        return timm_reparameterize(model, inplace=False)


# ---------------------------------------------------------------- deferred init

FACTORY_KWARGS = ("device", "dtype")


def accepts_factory_kwargs(model: nn.Module) -> bool:
    """Whether the model's class takes ``device=`` and ``dtype=`` (timm's "dd" factory
    kwargs, 1.0.21 on): read from the constructor's signature, following ``*args,
    **kwargs`` pass-through constructors (DeiT's distilled class, LeViT's) up the MRO."""
    for cls in type(model).__mro__:
        if cls is nn.Module or "__init__" not in vars(cls):
            continue
        params = inspect.signature(cls.__init__).parameters
        if all(k in params for k in FACTORY_KWARGS):
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def declares_deferred_init(model: nn.Module) -> bool:
    """Whether ``model.init_weights`` takes ``needs_reset``: timm's meta-device init API
    (1.0.23 on), which initializes every parameter after ``to_empty``. Older
    ``init_weights`` methods (ResNet's ``zero_init_last``) only adjust a normal init."""
    init = getattr(model, "init_weights", None)
    if not callable(init):
        return False
    return "needs_reset" in inspect.signature(init).parameters


def non_persistent_buffers(model: nn.Module) -> tuple[str, ...]:
    """Buffers left out of the state_dict: computed by the constructor, never loaded."""
    persistent = set(model.state_dict(keep_vars=True))
    return tuple(name for name, _ in model.named_buffers() if name not in persistent)


# ---------------------------------------------------------------- patch geometry

IMG_SHRINK = 0.7  # new grid = round(0.7 x original grid), e.g. 224/16: 14 -> 10 (img_size 160)


@dataclass(frozen=True)
class Geometry:
    patch: int
    img: tuple[int, int]
    prefix_tokens: int        # tokens in pos_embed before the grid (0 with no_embed_class)


def _not_patch_model(model: nn.Module) -> str:
    """Why the model has no plain patch geometry ('' when it has one)."""
    pe = getattr(model, "patch_embed", None)
    if not isinstance(getattr(pe, "proj", None), nn.Conv2d):
        return "no Conv2d patch_embed.proj"
    if getattr(model, "pos_embed", None) is None:
        return "no absolute position embedding (pos_embed)"
    if hasattr(pe, "backbone"):
        return "a hybrid patch embedding (CNN backbone)"
    if pe.patch_size[0] != pe.patch_size[1]:
        return f"a non-square patch {tuple(pe.patch_size)}"
    return ""


def geometry_of(model: nn.Module) -> Geometry | None:
    """The patch geometry of a ViT-style model (square Conv2d patch embedding, absolute
    position embedding, no hybrid backbone), else None."""
    if _not_patch_model(model):
        return None
    pe = model.patch_embed
    prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
    return Geometry(pe.patch_size[0], tuple(pe.img_size), prefix)


def constructor_accepts(cls: type, name: str) -> bool:
    """Whether ``cls(name=...)`` is a keyword its constructor takes, following ``**kwargs``
    up the class hierarchy (VisionTransformerDistilled passes them to VisionTransformer)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def changed_geometries(geom: Geometry) -> dict[str, dict]:
    """geometry id -> create_model kwargs: twice the patch, and a ~0.7x smaller image."""
    p, (h, w) = geom.patch, geom.img
    gh = max(2, round(h // p * IMG_SHRINK))
    gw = max(2, round(w // p * IMG_SHRINK))
    img = (gh * p, gw * p)
    return {f"patch_size_{2 * p}": {"patch_size": 2 * p},
            f"img_size_{img[0]}" if img[0] == img[1] else f"img_size_{img[0]}x{img[1]}":
                {"img_size": img if img[0] != img[1] else img[0]}}


@dataclass(frozen=True)
class PatchDiscovery:
    geometry: Geometry | None
    reason: str = ""   # why the model has no patch_size cases ('' when it has)


@functools.lru_cache(maxsize=None)
def patch_discovery(model_name: str) -> PatchDiscovery:
    """Whether the model is a patch-size model: its module resamples checkpoints on load
    (model_families.PATCH_SIZE_MODULES), its default meta-device build has a plain patch
    geometry, and its constructor takes ``patch_size`` and ``img_size`` (its signature).
    Discovery only: whether the *changed* geometries build is the check's business (a
    constructor that now raises for them is a failed case, not a missing one)."""
    module = build.entrypoint_module(model_name)
    if module not in model_families.PATCH_SIZE_MODULES:
        return PatchDiscovery(None, "its module is not a patch-size module (model_families.PATCH_SIZE_MODULES)")
    try:
        model = build.create(model_name, device="meta")
    except Exception as exc:  # noqa: BLE001 - the create family fails on it; no geometry to read here
        return PatchDiscovery(None, f"the default model does not build on the meta device ({type(exc).__name__}: "
                                    f"{str(exc)[:200]}); the create family reports it")
    why = _not_patch_model(model)
    if why:
        return PatchDiscovery(None, f"not a plain patch-embedding model: {why}")
    missing = [k for k in ("patch_size", "img_size") if not constructor_accepts(type(model), k)]
    if missing:
        return PatchDiscovery(None, f"{type(model).__name__}() takes no {' / '.join(missing)}")
    return PatchDiscovery(geometry_of(model))


def patch_geometry(model_name: str) -> Geometry | None:
    """The model's patch geometry if it is a patch-size model (patch_discovery), else None."""
    return patch_discovery(model_name).geometry
