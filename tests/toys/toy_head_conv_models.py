"""Toy CNNs with a conv after the global pool, sized for the pooled width (MobileNetV3's
conv_head): switching to a pool of another width (catavgmax doubles it) needs other weights,
so reset_classifier may refuse it. Bugs:

- ``ok``: like timm 1.0.31, keeps the pool when none is given, refuses a width change;
- ``refuses_same_width``: refuses every pool change, also max <-> avg (no new weights needed);
- ``accepts_width_change``: like timm 1.0.30, takes catavgmax and leaves a model whose
  forward raises (conv_head built for the old width).
"""
from __future__ import annotations

import torch
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.registry import register_toys

BUGS = ("ok", "refuses_same_width", "accepts_width_change")
CHANNELS, HIDDEN = 8, 12


class ToyHeadConvNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg", bug: str = "ok",
                 **kwargs):
        super().__init__()
        assert global_pool in ("avg", "max", "catavgmax")
        self.bug, self.num_classes = bug, num_classes
        self.num_features, self.head_hidden_size = CHANNELS, HIDDEN
        self.stem = nn.Conv2d(in_chans, CHANNELS, 3, 2, 1)
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.conv_head = nn.Conv2d(CHANNELS * self.global_pool.feat_mult(), HIDDEN, 1)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(HIDDEN, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.conv_head(self.global_pool(x)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None and global_pool != self.global_pool.pool_type:
            pool = SelectAdaptivePool2d(pool_type=global_pool)
            if self.bug == "refuses_same_width" or (
                    self.bug == "ok" and pool.feat_mult() != self.global_pool.feat_mult()):
                assert False, "The head conv is sized for the pooled width, pooling can not change it."
            self.global_pool = pool
        self.num_classes = num_classes
        self.head = nn.Linear(HIDDEN, num_classes) if num_classes > 0 else nn.Identity()


NAMES = [f"toy_head_conv_{b}" for b in BUGS]
register_toys(globals(), {name: (lambda pretrained, _bug=name[len("toy_head_conv_"):], _name=name, **kw:
                                 build_model_with_cfg(ToyHeadConvNet, _name, pretrained, bug=_bug, **kw))
                          for name in NAMES})
