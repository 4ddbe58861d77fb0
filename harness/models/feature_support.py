"""What feature extraction a model declares, read from the model on the meta device (part
of the cached facts): its ``feature_info`` levels, the wrapper ``features_only=True``
builds, the default ``out_indices``, whether it has ``forward_intermediates`` /
``prune_intermediate_layers`` and which output formats besides NCHW that accepts.

A model supports features when its class sets ``feature_info`` (timm's convention for
every model that ``features_only`` can wrap). Whether the features model then builds is
the check's business: a failed meta build is recorded in ``build_error`` and the cases
are collected all the same, so the failure is reported instead of the cases vanishing.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from harness.models import build

# forward_intermediates output formats besides NCHW (timm's models accept NHWC or NLC)
ALT_FORMATS: tuple[str, ...] = ("NHWC", "NLC")
# how timm's forward_intermediates refuses a format or the norm: an assert before any compute,
# 'Output shape must be NCHW.' / 'Output format must be one of NCHW or NLC.' /
# 'normalization of features not supported' (Hiera)
_FORMAT_REFUSAL = re.compile(r"output (shape|format)", re.IGNORECASE)
_NORM_REFUSAL = re.compile(r"normali[sz]ation .*not supported", re.IGNORECASE)
GETTER = "FeatureGetterNet"


@dataclass(frozen=True)
class FeatureFacts:
    levels: int                          # len(model.feature_info)
    info: tuple[tuple[int, int, str], ...]  # (num_chs, reduction, module) per level, as declared
    default_cls: str                     # class of create_model(features_only=True), '' if it failed
    default_out_indices: tuple[int, ...]  # as the default features model's feature_info holds them
    intermediates: bool                  # the class defines forward_intermediates
    prune: bool                          # ... and prune_intermediate_layers
    alt_formats: tuple[str, ...] = ()    # formats forward_intermediates accepts besides NCHW
    build_error: str = ""                # features_only=True failed on the meta device
    norm: bool = True                    # forward_intermediates does not refuse norm=True (Hiera does)

    @staticmethod
    def from_json(data: dict | None) -> "FeatureFacts | None":
        if not data:
            return None
        return FeatureFacts(**{**data, "info": tuple(tuple(i) for i in data["info"]),
                               "default_out_indices": tuple(data["default_out_indices"]),
                               "alt_formats": tuple(data.get("alt_formats", ()))})

    def to_json(self) -> dict:
        return asdict(self)

    def wrappers(self) -> tuple[str, ...]:
        """The feature_cls values to compare with the default wrapper. FeatureHookNet and
        FX (FeatureGraphNet) tap feature_info's modules, so they apply where those modules
        output feature maps, i.e. every model whose default wrapper is not the getter (a
        getter model's modules are token blocks; only forward_intermediates turns them into
        feature maps). FeatureGetterNet applies wherever forward_intermediates exists."""
        if self.default_cls == GETTER:
            return ()
        kinds = [k for k in ("hook", "fx") if not (k == "hook" and self.default_cls == "FeatureHookNet")]
        if self.intermediates:
            kinds.append("getter")
        return tuple(kinds)


def declared_levels(model: nn.Module) -> list[dict] | None:
    """The model's feature_info as a list of dicts, or None when it declares none."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return None
    info = getattr(info, "info", info)  # a FeatureInfo holds the list in .info
    if not isinstance(info, (list, tuple)) or not info or not all(isinstance(i, dict) for i in info):
        return None
    return list(info)


def _refuses(model: nn.Module, input_size: tuple[int, ...], refusal: re.Pattern, **kwargs) -> bool:
    """Whether forward_intermediates(**kwargs) on the meta device stops at timm's assert that
    refuses the option (at the top of the method, before any compute). Anything else (a
    result, or a failure later in the forward) means the option is accepted and its case is
    collected; the check then runs it for real."""
    try:
        with torch.no_grad():
            model.forward_intermediates(torch.empty((1, *input_size), device="meta"), intermediates_only=True,
                                        **kwargs)
    except Exception as exc:  # noqa: BLE001 - only the explicit refusal drops the case
        return isinstance(exc, (AssertionError, ValueError)) and bool(refusal.search(str(exc)))
    return False


def accepted_formats(model: nn.Module, input_size: tuple[int, ...]) -> tuple[str, ...]:
    """The formats of ALT_FORMATS forward_intermediates does not refuse (meta device)."""
    return tuple(f for f in ALT_FORMATS if not _refuses(model, input_size, _FORMAT_REFUSAL, output_fmt=f))


def feature_facts(model_name: str, model: nn.Module, input_size: tuple[int, ...]) -> FeatureFacts | None:
    """What ``model`` (built on the meta device) declares; None without feature_info."""
    levels = declared_levels(model)
    if levels is None:
        return None
    info = tuple((int(i.get("num_chs", 0)), int(i.get("reduction", 0)), str(i.get("module", ""))) for i in levels)
    intermediates = callable(getattr(type(model), "forward_intermediates", None))
    prune = intermediates and callable(getattr(type(model), "prune_intermediate_layers", None))
    formats = accepted_formats(model, input_size) if intermediates else ()
    norm = not (intermediates and _refuses(model, input_size, _NORM_REFUSAL, norm=True))
    try:
        features = build.create(model_name, device="meta", features_only=True)
    except Exception as exc:  # noqa: BLE001 - recorded: the features checks report it
        return FeatureFacts(len(levels), info, "", (), intermediates, prune, formats,
                            build_error=f"{type(exc).__name__}: {exc}"[:300], norm=norm)
    out_indices = tuple(int(i) for i in features.feature_info.out_indices)
    return FeatureFacts(len(levels), info, type(features).__name__, out_indices, intermediates, prune, formats,
                        norm=norm)
