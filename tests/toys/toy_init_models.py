"""Toy timm models whose constructors depend on their own random init in ways the fast
build (harness.weights.model_cache: timm's random inits skipped) must notice and fall back
from, registered only by the harness's own tests:

- ``toy_init_keyword``: timm's init functions called by keyword through named_apply
  (``init_weight_vit(module=..., name=...)``, as sam2_hiera does);
- ``toy_init_buffer``: a random init drawn into a buffer (not a parameter: fill_deterministic
  leaves it as the constructor made it);
- ``toy_init_derived``: a buffer computed from an initialized parameter.
"""
from __future__ import annotations

import torch
from timm.layers import weight_init
from timm.models import build_model_with_cfg
from timm.models._manipulate import named_apply
from torch import nn

from tests.toys.registry import register_toys

KINDS = ("keyword", "buffer", "derived")


def _init(module: nn.Module, name: str = "") -> None:
    # looked up at call time, as timm's own modules do (they are the ones the fast build patches)
    weight_init.init_weight_vit(module=module, name=name)


class ToyInitNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, kind: str = "keyword", **kwargs):
        super().__init__()
        self.num_classes, self.num_features = num_classes, 8
        self.stem = nn.Conv2d(in_chans, 8, 3, 2, 1)
        self.head = nn.Linear(8, num_classes)
        named_apply(_init, self)
        self.register_buffer("noise", torch.zeros(8))
        if kind == "buffer":
            nn.init.normal_(self.noise)
        elif kind == "derived":
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            self.noise = self.head.weight.detach()[0, :8].clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x).mean((2, 3)) + self.noise)


NAMES = register_toys(globals(), {f"toy_init_{k}": (lambda kind: lambda pretrained, **kw: build_model_with_cfg(
    ToyInitNet, f"toy_init_{kind}", pretrained, kind=kind, **kw))(k) for k in KINDS})
