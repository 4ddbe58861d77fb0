"""Toy reparameterizable timm models, registered only by the harness's own tests, each
planting one kind of reparameterization bug the reparam check must catch. Importing this
module registers them (it also works as a pytest plugin: ``-p tests.toys.toy_reparam_models``).

``toy_reparam_ok`` is correct; ``toy_reparam_<bug>`` plants ``<bug>``. The net is a
RepVGG-style block (3x3+BN, 1x1+BN and identity-BN branches fused into one 3x3 conv)
followed by a NextViT-style pre-norm block (BN folded into the next 1x1 conv).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys

BUGS = (
    "ok",
    "drop_branch",       # the fused conv forgets the 1x1 branch: outputs change
    "none_layer",        # NextViT 0.9.16-1.0.6: the folded pre-norm is set to None, forward still calls it
    "adds_params",       # the fused conv is added but the branches are kept: more parameters
    "not_idempotent",    # no 'already fused' guard: a second call folds the BN scale again
    "noop",              # reparameterize() returns at once: nothing fused, every other sub-check passes
)
CHANNELS = 8


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv followed by eval-mode BN as one conv: w * s, (b - mean) * s + beta."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * scale.reshape(-1, 1, 1, 1), (bias - bn.running_mean) * scale + bn.bias


class RepBlock(nn.Module):
    """relu(bn(conv3x3(x)) + bn(conv1x1(x)) + bn(x)), fused into relu(conv3x3(x))."""

    def __init__(self, dim: int, bug: str):
        super().__init__()
        self.bug = bug
        self.conv3 = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.bn_id = nn.BatchNorm2d(dim)
        self.reparam_conv: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return F.relu(self.reparam_conv(x))
        return F.relu(self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)) + self.bn_id(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None or self.bug == "noop":
            return
        w3, b3 = _fold_bn(self.conv3.weight, None, self.bn3)
        w1, b1 = _fold_bn(F.pad(self.conv1.weight, (1, 1, 1, 1)), None, self.bn1)
        eye = torch.zeros_like(self.conv3.weight)
        eye[torch.arange(eye.shape[0]), torch.arange(eye.shape[0]), 1, 1] = 1.0
        wi, bi = _fold_bn(eye, None, self.bn_id)
        if self.bug == "drop_branch":
            w1, b1 = torch.zeros_like(w1), torch.zeros_like(b1)
        self.reparam_conv = nn.Conv2d(w3.shape[1], w3.shape[0], 3, 1, 1, bias=True)
        self.reparam_conv.weight.copy_(w3 + w1 + wi)
        self.reparam_conv.bias.copy_(b3 + b1 + bi)
        if self.bug != "adds_params":
            for name in ("conv3", "bn3", "conv1", "bn1", "bn_id"):
                delattr(self, name)


class PreNormBlock(nn.Module):
    """x + fc(norm(x)), with the BN norm folded into fc when reparameterized."""

    def __init__(self, dim: int, bug: str):
        super().__init__()
        self.bug = bug
        self.norm = nn.BatchNorm2d(dim)
        self.fc = nn.Conv2d(dim, dim, 1)
        self.scale = nn.Parameter(torch.ones(dim))  # folded into fc as well
        self.is_fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.norm(x))
        return x + (out if self.is_fused else out * self.scale.reshape(1, -1, 1, 1))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.is_fused and self.bug != "not_idempotent" or self.bug == "noop":
            return
        # fc(norm(x)) * scale == (W * a * scale_o) x + (W @ b + bias) * scale_o, a, b: the BN affine
        a = self.norm.weight / (self.norm.running_var + self.norm.eps).sqrt()
        b = self.norm.bias - self.norm.running_mean * a
        w = self.fc.weight[:, :, 0, 0]
        new_bias = (w @ b + self.fc.bias) * self.scale
        self.fc.weight.copy_((w * a[None, :] * self.scale[:, None])[:, :, None, None])
        self.fc.bias.copy_(new_bias)
        if self.bug == "not_idempotent":  # keeps (and re-applies) the BN and the scale
            self.norm.weight.fill_(1.0), self.norm.bias.zero_()
            self.norm.running_mean.zero_(), self.norm.running_var.fill_(1.0 - self.norm.eps)
        else:
            self.norm = None if self.bug == "none_layer" else nn.Identity()
        self.is_fused = True


class ToyRepNet(PooledLinearHead):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = CHANNELS
        self.stem = nn.Conv2d(in_chans, CHANNELS, 3, 2, 1)
        self.block = RepBlock(CHANNELS, bug)
        self.pre_norm = PreNormBlock(CHANNELS, bug)
        self.head = nn.Linear(CHANNELS, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_norm(self.block(self.stem(x)))


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyRepNet, name, pretrained, bug=bug, **kwargs)


NAMES = register_toys(globals(), {f"toy_reparam_{b}": _builder(f"toy_reparam_{b}", b) for b in BUGS})
