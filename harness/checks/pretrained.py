"""The pretrained check: a head variant built with ``pretrained=True`` from a checkpoint
file the harness wrote (the deterministic default-config model, as .safetensors and
.pth) loads every tensor it should, keeps the forward contract, and with the default
head reproduces the source model's logits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.checks import compare
from harness.checks.create import assert_forward_contract, check_create, construct, forward
from harness.models import build
from harness.models.variants import HeadVariant, LoadMode
from harness.weights import checkpoints, model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input


@dataclass
class SourceCheckpoint:
    """The deterministic default-config model, its state_dict, files and outputs: written
    once per model and worker, shared by every pretrained variant of that model."""

    state_dict: dict[str, torch.Tensor]
    files: dict[str, Path]
    logits: torch.Tensor | None  # None on the meta device

    def overlay(self, device: str, fmt: str = "safetensors") -> dict[str, Any]:
        """The pretrained_cfg_overlay that loads this checkpoint (in memory on meta)."""
        return (checkpoints.state_dict_overlay(self.state_dict) if device == "meta"
                else checkpoints.file_overlay(self.files[fmt]))


def make_source(model_name: str, device: str, workdir: Path, input_size) -> SourceCheckpoint:
    if device == "meta":
        return SourceCheckpoint(build.create(model_name, device=device).state_dict(), {}, None)
    model = model_cache.deterministic(model_name, device)  # == create + fill_deterministic, built once per worker
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    files = {fmt: checkpoints.write_native_checkpoint(sd, workdir / model_name, fmt)
             for fmt in checkpoints.FORMATS}
    with torch.no_grad():
        logits = model(make_input(model_name, input_size, device=device)).cpu()
    return SourceCheckpoint(sd, files, logits)


def check_pretrained(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                     source: SourceCheckpoint):
    """One pretrained cell of the matrix. Raises AssertionError naming what differed;
    returns the forward output it checked."""
    model = construct(model_name, device, mode, variant, source.overlay(device))
    compare.assert_loaded_from(model.state_dict(), source.state_dict,
                               build.classifier_prefixes(model_name), variant.changes_head)
    out = forward(model, model_name, input_size, device)
    assert_forward_contract(model, out, variant, BATCH_SIZE)
    if not variant.changes_head and source.logits is not None:
        compare.assert_close(out, source.logits, "logits of the pretrained model vs the checkpoint's source")
        other = construct(model_name, device, mode, variant, source.overlay(device, "pth"))
        compare.assert_close(forward(other, model_name, input_size, device), source.logits,
                             "logits after loading the .pth checkpoint")
    return out


def check_variant(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                  source: SourceCheckpoint | None):
    """One cell of the create/pretrained matrix, whichever the load mode; returns the
    forward output it checked."""
    if mode.pretrained:
        return check_pretrained(model_name, device, input_size, mode, variant, source)
    return check_create(model_name, device, input_size, mode, variant)
