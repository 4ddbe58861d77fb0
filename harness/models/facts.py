"""Facts about each model gathered once on the meta device (parameter count, module,
input size), cached per timm release so collecting ~1,400 models stays cheap."""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Callable

from harness.models import build
from harness.models.discovery import accepts_factory_kwargs, declares_deferred_init, reparam_sites


@dataclass(frozen=True)
class ModelFacts:
    name: str
    module: str
    param_count: int | None     # None: the model could not be built on the meta device
    input_size: tuple[int, ...]
    meta_error: str = ""
    reparam_sites: tuple[str, ...] = ()  # modules reparameterize_model would touch
    factory_kwargs: bool = False          # the constructor takes device= and dtype=
    deferred_init: bool = False           # init_weights(needs_reset=...) exists (meta-device init)

    @staticmethod
    def from_json(data: dict) -> "ModelFacts":
        return ModelFacts(**{**data, "input_size": tuple(data["input_size"]),
                             "reparam_sites": tuple(data.get("reparam_sites", ()))})


def gather(model_name: str) -> ModelFacts:
    module = build.entrypoint_module(model_name)
    try:
        model = build.create(model_name, device="meta")
    except Exception as exc:  # noqa: BLE001 - recorded; the create check reports it properly
        return ModelFacts(model_name, module, None, build.choose_input_size(model_name, None),
                          meta_error=f"{type(exc).__name__}: {exc}"[:300])
    return ModelFacts(model_name, module, build.param_count(model),
                      build.choose_input_size(model_name, model), reparam_sites=reparam_sites(model),
                      factory_kwargs=accepts_factory_kwargs(model), deferred_init=declares_deferred_init(model))


def cache_key(model_name: str) -> str:
    """Keyed by timm version and the defining file's mtime, so a local checkout being
    edited never serves stale facts."""
    module = sys.modules.get(build.entrypoint_module(model_name))
    path = getattr(module, "__file__", "") or ""
    stamp = int(os.path.getmtime(path)) if path and os.path.exists(path) else 0
    return f"harness/facts/v3/{build.timm_version()}/{stamp}/{model_name}"


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
