"""Toy models that misbehave the way a full sweep must survive, registered only by the
harness's own tests (``-p tests.toy_sweep_models``). Each misbehaves only when built with
``num_classes=7``, so one test of the model goes wrong and the others must still pass:

- ``toy_segfault``: its forward segfaults the process (reads address 0);
- ``toy_hog``: its forward allocates ~1 GB, over a small ``--max-rss-gb``;
- ``toy_slow``: its forward sleeps for a minute, over a short ``--timeout``.
"""
from __future__ import annotations

import ctypes
import time

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from tests.toy_models import ToyNet, _cfg

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


NAMES = [f"toy_{b}" for b in BEHAVIOURS]
default_cfgs = generate_default_cfgs({f"{n}.harness": _cfg() for n in NAMES})


def _entrypoint(name: str, behaviour: str):
    def entrypoint(pretrained: bool = False, **kwargs):
        return build_model_with_cfg(MisbehavingNet, name, pretrained, behaviour=behaviour, **kwargs)
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    return entrypoint


for _name in NAMES:
    globals()[_name] = register_model(_entrypoint(_name, _name[len("toy_"):]))
