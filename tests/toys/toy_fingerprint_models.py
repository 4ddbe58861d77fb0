"""Toy models for the fingerprint store's failure handling: a model whose construction kills
the tracing worker, one that hangs, and a well-behaved one. Their entry points go through
timm.models._builder.build_model_with_cfg (looked up at call time, where the registry
reader replaces it to record its arguments without building), so reading the registry
never runs the constructors."""
from __future__ import annotations

import os
import time

from timm.layers import Mlp
from timm.models import _builder
from torch import nn

from tests.toys.registry import register_toys


class FingerprintToy(nn.Module):
    def __init__(self, num_classes: int = 1000, behaviour: str = "fine", **kwargs):
        super().__init__()
        if behaviour == "exit":
            os._exit(3)  # the worker dies: no exception, no record
        if behaviour == "hang":
            time.sleep(3600)
        self.num_classes = num_classes
        self.mlp = Mlp(3, 8, 4)
        self.head = nn.Linear(4, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.mlp(x.mean((2, 3))))


def _entry(behaviour: str):
    def build(pretrained: bool = False, **kwargs):
        return _builder.build_model_with_cfg(FingerprintToy, f"toy_fp_{behaviour}", pretrained, behaviour=behaviour,
                                             **kwargs)
    return build


NAMES = register_toys(globals(), {f"toy_fp_{b}": _entry(b) for b in ("exit", "hang", "fine")})
