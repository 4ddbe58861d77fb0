"""Checkpoint files in timm's native format, written by the harness itself.

"Pretrained" never means downloaded: the harness writes the deterministic weights to a
file and loads it through create_model(pretrained=True, pretrained_cfg_overlay=...),
exercising timm's real loading path (load_state_dict, checkpoint_filter_fn, classifier
adaptation, strictness) on every release from 0.9.16 on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

FORMATS = ("safetensors", "pth")


def write_native_checkpoint(state_dict: Mapping[str, torch.Tensor], directory: Path,
                            fmt: str = "safetensors", stem: str = "model") -> Path:
    """Write a plain state_dict as timm publishes them (``model.safetensors`` or
    ``pytorch_model.pth``-style torch.save of tensors only)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; expected one of {FORMATS}")
    directory.mkdir(parents=True, exist_ok=True)
    # Tied or view tensors share storage, which safetensors refuses: store independent copies.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in state_dict.items()}
    path = directory / f"{stem}.{fmt}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    if fmt == "safetensors":
        save_file(tensors, str(tmp))
    else:
        torch.save(tensors, tmp)
    tmp.replace(path)
    return path


def file_overlay(path: Path) -> dict[str, Any]:
    """The pretrained_cfg_overlay a user passes to load a local copy of a checkpoint:
    exactly ``dict(file=path)``. Nothing else is blanked (no ``url``, ``hf_hub_id``,
    ``source`` or ``custom_load``): timm's own routing decides how the file is read
    (``_resolve_pretrained_source`` puts ``file`` before the hub and the URL on every
    release from 0.9.16 on), so a misrouted file fails the check the way it fails for
    users. The environment is offline (HF_HUB_OFFLINE, harness.models.build)."""
    return dict(file=str(path))


def state_dict_overlay(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """For meta-device models (too large to write): timm's in-memory state_dict source
    (first in ``_resolve_pretrained_source``, before ``file``), which runs the same
    filter/strict-load path on shapes and keys only."""
    return dict(state_dict=dict(state_dict))
