"""Which models a run covers: fnmatch patterns over timm's registry, 'all', or the
curated 'smoke' set; minus --exclude. A pattern that matches nothing is a usage error,
never an empty green run."""
from __future__ import annotations

import difflib
import fnmatch

import timm

# Small, fast members of the families behind timm's historic regressions, covering every
# check family: ViT (incl. an attention pool, CLIP), HRNet heads, NextViT reparam,
# ConvNormAct users (cspnet, dpn, regnet), reparameterizable CNNs, plain convnets, hybrids.
SMOKE_MODELS: tuple[str, ...] = (
    "vit_tiny_patch16_224",            # ViT; reset configs include global_pool='map'
    "vit_so150m_patch16_reg4_map_256",  # ViT with attention pool by default (structural)
    "vit_base_patch16_clip_224",       # CLIP ViT (OpenAI/OpenCLIP checkpoint families)
    "deit_tiny_distilled_patch16_224",  # two classifiers (head, head_dist)
    "hrnet_w18_small",                 # model-specific head kwarg: head='' / 'incre'
    "nextvit_small",                   # reparameterize, hybrid conv/attention
    "cspresnet50",                     # ConvNormAct users (pickle compat)
    "dpn48b",
    "regnetx_002",
    "repvgg_a0",                       # reparameterizable CNN
    "fastvit_t8",                      # reparameterizable hybrid
    "resnet18",                        # plain convnet
    "convnext_atto",                   # convnet with a norm+MLP head
    "mobilenetv3_small_050",           # efficientnet builder, head_hidden_size != num_features
    "levit_128s",                      # hybrid conv/attention, distilled head
)


# Within the smoke selection, the check families whose every case is costly (an ONNX
# export through dynamo takes ~40 s a model on 2 cores; patch_size builds a ViT-B per tag
# and geometry) run on a curated subset, so `nox -s compat` stays a quick gate. Keys are
# check families, values fnmatch patterns over the test's parameter id; a family not
# listed runs every smoke model. `--models 'pattern,...'` or `all` runs every case.
SMOKE_SCOPES: dict[str, tuple[str, ...]] = {
    "onnx": ("*-torchscript", "*-torchscript-reparam", "resnet18-dynamo", "mobilenetv3_small_050-dynamo",
             "convnext_atto-dynamo", "vit_tiny_patch16_224-dynamo", "repvgg_a0-dynamo*"),
    "patch_size": ("vit_tiny_patch16_224.augreg_in21k-*", "vit_base_patch16_clip_224.openai-*",
                   "vit_base_patch16_clip_224.laion2b-*"),
}


def in_smoke_scope(check: str, param_id: str) -> bool:
    """Whether a smoke run keeps this test (see SMOKE_SCOPES)."""
    patterns = SMOKE_SCOPES.get(check)
    return patterns is None or any(fnmatch.fnmatchcase(param_id, p) for p in patterns)


class SelectionError(ValueError):
    """A --models/--exclude value that cannot be honoured; the message says why."""


def _expand(token: str, registry: list[str]) -> list[str]:
    if token == "all":
        return list(registry)
    if token == "smoke":
        return [m for m in SMOKE_MODELS if m in set(registry)]
    matched = fnmatch.filter(registry, token)
    if not matched:
        close = difflib.get_close_matches(token.replace("*", ""), registry, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise SelectionError(
            f"--models pattern {token!r} matches no registered model in timm "
            f"{timm.__version__} ({len(registry)} registered).{hint}")
    return matched


def resolve_models(spec: str, exclude: str = "", registry: list[str] | None = None) -> list[str]:
    """Ordered, de-duplicated model names for ``--models spec --exclude exclude``."""
    registry = sorted(timm.list_models()) if registry is None else registry
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise SelectionError("--models is empty; use 'smoke', 'all' or fnmatch patterns")
    selected = list(dict.fromkeys(m for t in tokens for m in _expand(t, registry)))
    drops = [p.strip() for p in exclude.split(",") if p.strip()]
    selected = [m for m in selected if not any(fnmatch.fnmatchcase(m, p) for p in drops)]
    if not selected:
        raise SelectionError(f"--models {spec!r} minus --exclude {exclude!r} leaves no model to check")
    return selected
