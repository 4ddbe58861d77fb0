"""Toy models that misbehave the way a full sweep must survive, registered only by the
harness's own tests (``-p tests.toys.toy_sweep_models``). Each misbehaves only when built with
``num_classes=7``, so one test of the model goes wrong and the others must still pass:

- ``toy_segfault``: its forward segfaults the process (reads address 0);
- ``toy_hog``: its forward allocates ~1 GB, over a small ``--max-rss-gb``;
- ``toy_slow``: its forward sleeps for a minute, over a short ``--timeout``.
"""
from __future__ import annotations

import ctypes
import time

import torch
from timm.models import build_model_with_cfg

from tests.toys.registry import register_toys
from tests.toys.toy_models import ToyNet

BEHAVIOURS = ("segfault", "hog", "slow")
HOG_BYTES = 1024 ** 3


class MisbehavingNet(ToyNet):
    def __init__(self, behaviour: str = "", **kwargs):
        super().__init__(**kwargs)
        self.behaviour = behaviour if self.num_classes == 7 else ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.behaviour == "segfault":
            ctypes.string_at(0)
        elif self.behaviour == "hog":
            hog = torch.ones(HOG_BYTES // 4)  # touched, so resident
            x = x + hog[:1] * 0
        elif self.behaviour == "slow":
            time.sleep(60)
        return super().forward(x)


def _builder(name: str, behaviour: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(MisbehavingNet, name, pretrained,
                                                             behaviour=behaviour, **kwargs)


NAMES = register_toys(globals(), {f"toy_{b}": _builder(f"toy_{b}", b) for b in BEHAVIOURS})
