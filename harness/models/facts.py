"""Facts about each model gathered once on the meta device (parameter count, module,
input size, reparam sites, feature extraction and input-geometry support), cached per
timm release so collecting ~1,400 models stays cheap."""
from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from harness.models import build
from harness.models.discovery import accepts_factory_kwargs, declares_deferred_init, reparam_sites
from harness.models.feature_support import FeatureFacts, feature_facts
from harness.models.input_geometry import GeometryFacts, geometry_facts


@dataclass(frozen=True)
class ModelFacts:
    name: str
    module: str
    param_count: int | None     # None: the model could not be built on the meta device
    input_size: tuple[int, ...]
    meta_error: str = ""
    reparam_sites: tuple[str, ...] = ()  # modules reparameterize_model would touch
    features: FeatureFacts | None = None  # None: the model declares no feature_info
    geometry: GeometryFacts | None = None
    factory_kwargs: bool = False          # the constructor takes device= and dtype=
    deferred_init: bool = False           # init_weights(needs_reset=...) exists (meta-device init)

    @staticmethod
    def from_json(data: dict) -> "ModelFacts":
        return ModelFacts(**{**data, "input_size": tuple(data["input_size"]),
                             "reparam_sites": tuple(data.get("reparam_sites", ())),
                             "features": FeatureFacts.from_json(data.get("features")),
                             "geometry": GeometryFacts.from_json(data.get("geometry"))})


def gather(model_name: str) -> ModelFacts:
    module = build.entrypoint_module(model_name)
    try:
        model = build.create(model_name, device="meta")
    except Exception as exc:  # noqa: BLE001 - recorded; the create check reports it properly
        return ModelFacts(model_name, module, None, build.choose_input_size(model_name, None),
                          meta_error=f"{type(exc).__name__}: {exc}"[:300])
    input_size = build.choose_input_size(model_name, model)
    return ModelFacts(model_name, module, build.param_count(model), input_size, reparam_sites=reparam_sites(model),
                      features=feature_facts(model_name, model, input_size),
                      geometry=geometry_facts(model_name, model),
                      factory_kwargs=accepts_factory_kwargs(model), deferred_init=declares_deferred_init(model))


@functools.cache
def discovery_stamp() -> str:
    """A hash of the harness code that gathers facts and capabilities (harness/models/*.py
    and harness/registry/capability_rules.py): an edit of a probe changes every key, so a
    cache written by the previous probe is never served (a stale entry once hid the HRNet
    pool cases on a release run). A format version in ``kind`` alone relied on remembering."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*here.glob("*.py"), here.parent / "registry" / "capability_rules.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def cache_key(model_name: str, kind: str = "facts/v4") -> str:
    """Keyed by timm version, the defining file's mtime (a local checkout being edited never
    serves stale facts) and the discovery code's hash. ``kind`` names what is cached and its
    format version (models.capabilities caches under its own kind)."""
    module = sys.modules.get(build.entrypoint_module(model_name))
    path = getattr(module, "__file__", "") or ""
    stamp = int(os.path.getmtime(path)) if path and os.path.exists(path) else 0
    return f"harness/{kind}/{build.timm_version()}/{stamp}/{discovery_stamp()}/{model_name}"


def facts_for(model_name: str, cache_get: Callable | None = None,
              cache_set: Callable | None = None) -> ModelFacts:
    """Facts from the cache (pytest's config.cache in practice) or freshly gathered."""
    key = cache_key(model_name)
    if cache_get is not None:
        cached = cache_get(key, None)
        if cached:
            return ModelFacts.from_json(cached)
    facts = gather(model_name)
    if cache_set is not None:
        cache_set(key, asdict(facts))
    return facts
