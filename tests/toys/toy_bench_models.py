"""Toy timm models for the benchmark-comparison tests, registered only by the harness's
own tests. Their forward sleeps (plus a little arithmetic), so step times are set by the
test, not by the machine's load: ``toy_bench`` always sleeps BASE_S; ``toy_bench_slow``
sleeps BASE_S times ``HARNESS_TOY_SLOWDOWN`` (default 1), the planted slowdown."""
from __future__ import annotations

import os
import time

import torch
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.registry import register_toys, toy_cfg

BASE_S = 0.1
ENV = "HARNESS_TOY_SLOWDOWN"


class ToyBenchNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, slowdown_env: bool = False, **kwargs):
        super().__init__()
        self.num_classes, self.num_features = num_classes, 8
        self.factor = float(os.environ.get(ENV, "1")) if slowdown_env else 1.0
        self.stem = nn.Conv2d(in_chans, 8, 3, 2, 1)
        self.head = nn.Linear(8, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(BASE_S * self.factor)
        return self.stem(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


register_toys(globals(), {
    "toy_bench": lambda pretrained, **kw: build_model_with_cfg(ToyBenchNet, "toy_bench", pretrained, **kw),
    "toy_bench_slow": lambda pretrained, **kw: build_model_with_cfg(ToyBenchNet, "toy_bench_slow", pretrained,
                                                                    slowdown_env=True, **kw),
}, {f"{n}.harness": toy_cfg(num_classes=10, input_size=(3, 16, 16), pool_size=None)
    for n in ("toy_bench", "toy_bench_slow")})
