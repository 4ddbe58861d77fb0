"""The classifier head the toy CNNs share: global average pool, then a Linear on
``num_features`` (an Identity for num_classes=0), with timm's head API."""
from __future__ import annotations

import torch
from torch import nn


class PooledLinearHead(nn.Module):
    """Mixin for toy nets that set ``num_features`` (an int) and implement ``forward_features``.
    (No class-level annotation: torch.jit.script would read it and fail on the string 'int'.)"""

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)
