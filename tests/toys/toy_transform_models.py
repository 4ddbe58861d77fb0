"""Toy timm models for the transforms family, registered only by the harness's own tests,
each planting one way a transform changes what a model computes. Importing this module
registers them (it also works as a pytest plugin: ``-p tests.toys.toy_transform_models``).

``toy_tf_ok`` is correct under every transform: a conv stem, residual blocks run through
timm's ``checkpoint_seq`` when gradient checkpointing is on, and a window/global-context
mixer whose global query goes back to its own image's windows (``repeat_interleave``).
Each ``toy_tf_<bug>`` swaps in one quirk:

- ``graph_break``: the forward reads a tensor value in Python (``float(x.mean())``), a
  graph break for dynamo;
- ``compile_differs`` / ``script_differs`` / ``fx_differs`` / ``layout_differs``: the
  forward scales by 1.01 when compiling / scripted / FX tracing / given channels_last;
- ``batch_mix``: the global query is tiled with ``repeat`` instead of ``repeat_interleave``
  (timm's gcvit through 1.0.30), so images of a batch get each other's context;
- ``ckpt_drops_block``: the checkpointed path skips the last block (the flattening kind of
  bug ResNetV2 had before 1.0.16); ``ckpt_detach``: it detaches its input, so the stem gets
  no gradient; ``ckpt_unsupported``: ``set_grad_checkpointing`` asserts "not supported".
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, checkpoint_seq
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys

BUGS = ("ok", "graph_break", "compile_differs", "script_differs", "fx_differs", "layout_differs", "batch_mix",
        "ckpt_drops_block", "ckpt_detach", "ckpt_unsupported")
CHANNELS = 8


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.bn(self.conv(x)))


class WindowGlobal(nn.Module):
    """Adds each image's mean (its global query) to every 2x2 window of that image."""

    def __init__(self, dim: int, mix: bool):
        super().__init__()
        self.mix = mix
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        windows = x.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(b * 4, c, h // 2, w // 2)
        q = x.mean((2, 3))
        q = q.repeat(4, 1) if self.mix else q.repeat_interleave(4, dim=0)
        windows = windows + q[:, :, None, None]
        x = windows.reshape(b, 2, 2, c, h // 2, w // 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return self.proj(x)


class Quirk(nn.Module):
    """Identity, except under the condition its bug names (never scripted itself)."""

    def __init__(self, bug: str):
        super().__init__()
        self.bug = bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bug == "graph_break" and float(x.mean()) > 1e9:
            return x + 1
        if self.bug == "compile_differs" and torch.compiler.is_compiling():
            return x * 1.01
        if self.bug == "fx_differs" and torch.fx._symbolic_trace.is_fx_tracing():
            return x * 1.01
        if self.bug == "layout_differs" and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            return x * 1.01
        return x


class ScriptQuirk(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return x * 1.01
        return x


class ToyTransformNet(PooledLinearHead):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 **kwargs):
        super().__init__()
        self.bug = bug
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = CHANNELS
        self.grad_checkpointing = False
        self.stem = nn.Sequential(nn.Conv2d(in_chans, CHANNELS, 3, 2, 1), nn.BatchNorm2d(CHANNELS), nn.ReLU())
        self.blocks = nn.Sequential(Block(CHANNELS), Block(CHANNELS))
        self.mixer = WindowGlobal(CHANNELS, mix=bug == "batch_mix")
        plain = ("ok", "batch_mix", "ckpt_drops_block", "ckpt_detach", "ckpt_unsupported")
        self.quirk = ScriptQuirk() if bug == "script_differs" else nn.Identity() if bug in plain else Quirk(bug)
        self.head = nn.Linear(CHANNELS, num_classes) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if self.bug == "ckpt_unsupported":
            assert not enable, "gradient checkpointing not supported"
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def _checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        if self.bug == "ckpt_drops_block":
            return checkpoint_seq(self.blocks[:-1], x)
        if self.bug == "ckpt_detach":
            return checkpoint_seq(self.blocks, x.detach())
        return checkpoint_seq(self.blocks, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self._checkpointed(x)
        else:
            x = self.blocks(x)
        return self.quirk(self.mixer(x))


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyTransformNet, name, pretrained, bug=bug, **kwargs)


NAMES = register_toys(globals(), {f"toy_tf_{b}": _builder(f"toy_tf_{b}", b) for b in BUGS})
