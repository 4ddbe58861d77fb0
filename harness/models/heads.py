"""Introspection of classifier heads and pooling across timm's families and releases.

timm keeps pooling in different places: a ``global_pool`` string on the model (ViT),
a SelectAdaptivePool2d on the model or inside a ClassifierHead (CNNs), an attention
pool module (``attn_pool``). The signature below captures all of them so a reset that
silently drops or changes pooling shows up as a named difference.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn


def current_pool_type(model: nn.Module) -> str | None:
    """The pool type string the model is configured with, or None if it has none."""
    for owner in (model, getattr(model, "head", None)):
        pool = getattr(owner, "global_pool", None)
        if isinstance(pool, str):
            return pool
        if isinstance(getattr(pool, "pool_type", None), str):
            return pool.pool_type
    return None


def pool_signature(model: nn.Module) -> dict[str, str]:
    """Name -> description of every pooling element, comparable across resets."""
    sig: dict[str, str] = {}
    for owner_name, owner in (("", model), ("head.", getattr(model, "head", None))):
        pool = getattr(owner, "global_pool", None)
        if isinstance(pool, str):
            sig[f"{owner_name}global_pool"] = repr(pool)
    for name, module in model.named_modules():
        kind = type(module).__name__
        if hasattr(module, "pool_type") and hasattr(module, "flatten"):
            sig[name] = f"{kind}(pool_type={module.pool_type!r}, flatten={bool(module.flatten)})"
        elif "AttentionPool" in kind or name.rsplit(".", 1)[-1] == "attn_pool":
            sig[name] = kind
    if hasattr(model, "attn_pool"):
        sig.setdefault("attn_pool", type(model.attn_pool).__name__ if model.attn_pool is not None else "None")
    return sig


def diff_signatures(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Human-readable differences, e.g. 'attn_pool: AttentionPoolLatent -> (removed)'."""
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, "(absent)"), after.get(key, "(removed)")
        if a != b:
            lines.append(f"{key or '<root>'}: {a} -> {b}")
    return lines


def feature_dims(model: nn.Module) -> set[int]:
    """Widths a num_classes=0 output may have: head_hidden_size (timm >= 1.0 pre-logits)
    or num_features (the meaning both had in 0.9.x)."""
    dims = {getattr(model, "num_features", None), getattr(model, "head_hidden_size", None)}
    return {d for d in dims if isinstance(d, int)}


def supports_pre_logits(model: nn.Module) -> bool:
    fh = getattr(model, "forward_head", None)
    return fh is not None and "pre_logits" in inspect.signature(fh).parameters


def pre_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)
