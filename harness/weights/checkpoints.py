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


def _no_remote() -> dict[str, Any]:
    # Blank every remote source so a misrouted load finds nothing rather than the network.
    return dict(source="", url="", hf_hub_id="", custom_load=False)


def file_overlay(path: Path) -> dict[str, Any]:
    """pretrained_cfg_overlay that makes timm load ``path`` instead of a hub or URL."""
    return dict(_no_remote(), file=str(path))


def state_dict_overlay(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """For meta-device models (too large to write): timm's in-memory state_dict source,
    which runs the same filter/strict-load path on shapes and keys only."""
    return dict(_no_remote(), state_dict=dict(state_dict))
