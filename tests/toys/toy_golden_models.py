"""Toy timm model for the golden tests, registered only by the harness's own tests
(``-p tests.toys.toy_golden_models`` in a subprocess). ``HARNESS_TOY_GOLDEN`` plants a change:

- ``scale``: half of one layer's output channels times (1 + 1e-3), the smallest change
  golden must catch in float32 (``scale=0.05``: times 1.05, for the autocast profiles);
- ``reorder``: the same function computed in another float32 order (split matmul, pooling
  as sum / n), which golden must accept as noise;
- ``rename``: a module renamed, so the state_dict layout changes.
"""
from __future__ import annotations

import os

import torch
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.registry import register_toys, toy_cfg

ENV = "HARNESS_TOY_GOLDEN"
PLANTED_SCALE = 1e-3


def planted() -> str:
    return os.environ.get(ENV, "").split("=", 1)[0]


def planted_scale() -> float:
    value = os.environ.get(ENV, "")
    return float(value.split("=", 1)[1]) if "=" in value else PLANTED_SCALE


class ToyGoldenNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, global_pool: str = "avg", **kwargs):
        super().__init__()
        self.num_classes, self.num_features, self.global_pool = num_classes, 32, global_pool
        self.stem = nn.Conv2d(in_chans, 16, 3, 2, 1)
        self.bn = nn.BatchNorm2d(16)
        stage = nn.Conv2d(16, 32, 3, 1, 1)
        if planted() == "rename":
            self.stage_renamed = stage
        else:
            self.stage = stage
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = (self.stage_renamed if planted() == "rename" else self.stage)(x)
        if planted() == "scale":  # half the channels: a uniform scale would vanish in the LayerNorm
            x = torch.cat([x[:, :16] * (1 + planted_scale()), x[:, 16:]], dim=1)
        return torch.relu(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if planted() == "reorder":
            x = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
        else:
            x = x.mean((2, 3))
        x = self.norm(x)
        if pre_logits or isinstance(self.head, nn.Identity):
            return x
        if planted() == "reorder":  # the same matmul, summed in two halves, in reverse order
            w, h = self.head.weight, x.shape[1] // 2
            return x[:, h:] @ w[:, h:].t() + x[:, :h] @ w[:, :h].t() + self.head.bias
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


register_toys(globals(), {"toy_golden": lambda pretrained, **kw: build_model_with_cfg(
    ToyGoldenNet, "toy_golden", pretrained, **kw)}, {"toy_golden.harness": toy_cfg(num_classes=10)})
