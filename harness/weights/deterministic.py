"""Deterministic weights and inputs, independent of timm's own init code.

Each tensor is drawn from a generator seeded by (model name, tensor name), so two timm
releases with the same state_dict layout get bit-identical weights even when their init
functions differ. Scales keep deep nets finite: fan-in scaled matrices, norm weights near
one, small biases, positive BN running variances.
"""
from __future__ import annotations

import contextlib
import hashlib
import math

import torch
from torch import nn

BATCH_SIZE = 2


def seed_for(*parts: str) -> int:
    """A stable 63-bit seed from strings (Python's hash() is salted per process)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _draw(shape: torch.Size, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def deterministic_value(model_name: str, key: str, like: torch.Tensor) -> torch.Tensor:
    """The value the harness assigns to one state_dict entry (float32 on the CPU)."""
    noise = _draw(like.shape, seed_for(model_name, key))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + noise.abs().clamp(max=3.0) * 0.5  # positive, non-trivial spread
    if leaf == "running_mean":
        return noise * 0.1
    if like.dim() <= 1:
        if leaf == "bias" or leaf.endswith("_bias") or leaf.startswith("bias"):
            return noise * 0.02
        return 1.0 + noise * 0.1  # norm weights, layer scales, temperatures, scalars
    fan_in = like[0].numel()
    return noise / math.sqrt(max(fan_in, 1))


def is_filled(key: str, tensor: torch.Tensor, param_names: set[str]) -> bool:
    """Parameters and BN statistics are drawn; other buffers (indices, masks, computed
    position tables) are constants the constructor derives, so they are kept."""
    if not tensor.is_floating_point():
        return False
    return key in param_names or key.rsplit(".", 1)[-1] in ("running_mean", "running_var")


@torch.no_grad()
def fill_deterministic(model: nn.Module, model_name: str) -> nn.Module:
    """Overwrite the model's parameters and BN statistics in place; returns the model."""
    param_names = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if tensor.is_meta or not is_filled(key, tensor, param_names):
            continue
        value = deterministic_value(model_name, key, tensor)
        tensor.data.copy_(value.to(dtype=tensor.dtype, device=tensor.device))
    return model


def make_input(model_name: str, input_size: tuple[int, ...], batch_size: int = BATCH_SIZE,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """A seeded, normalized-image-like input of shape (B, C, H, W)."""
    gen = torch.Generator().manual_seed(seed_for(model_name, "input", *map(str, input_size)))
    return torch.randn((batch_size, *input_size), generator=gen).to(device)


@contextlib.contextmanager
def single_thread():
    """Run forwards on one intra-op thread. CPU kernels pick their blocking (and, for some
    convolutions, their algorithm) by thread count, so outputs recorded in one process and
    recomputed in another (under xdist or not) are only comparable at a fixed count: for
    nextvit_small with the deterministic weights, 1 and 2 threads differ by 287 in logits of
    magnitude 6.5e4, far beyond its float32-vs-float64 error at 2 threads (0.09)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
