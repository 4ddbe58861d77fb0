"""Toy timm models for the timm_utils family, registered only by the harness's own tests
(``-p tests.toys.toy_utils_models``).

``toy_utils_ok`` is a plain conv net. ``toy_utils_load_hook`` rescales its stem weight when
a state_dict is loaded into it (a conversion hook applied to weights that are already
converted), so a training checkpoint no longer restores the saved tensors.
``toy_utils_export_path`` computes something else while an ONNX export traces it
(``torch.onnx.is_in_onnx_export()``); ``toy_utils_exportable_layer`` builds another layer
under ``create_model(..., exportable=True)`` (as timm swaps in Conv2dSameExport) that does
not compute what the normal one does.
"""
from __future__ import annotations

import torch
from timm.layers import is_exportable
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys

BUGS = ("ok", "load_hook", "export_path", "exportable_layer")
CHANNELS = 8


class ToyCkptNet(PooledLinearHead):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 **kwargs):
        super().__init__()
        self.bug = bug
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = CHANNELS
        self.stem = nn.Conv2d(in_chans, CHANNELS, 3, 2, 1)
        self.norm = nn.BatchNorm2d(CHANNELS)
        self.act = nn.Hardswish() if bug == "exportable_layer" and is_exportable() else nn.SiLU()
        self.head = nn.Linear(CHANNELS, num_classes) if num_classes > 0 else nn.Identity()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.bug == "load_hook" and prefix + "stem.weight" in state_dict:
            state_dict[prefix + "stem.weight"] = state_dict[prefix + "stem.weight"] * 1.001
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.stem(x)))
        if self.bug == "export_path" and torch.onnx.is_in_onnx_export():
            x = x * 1.01
        return x


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyCkptNet, name, pretrained, bug=bug, **kwargs)


NAMES = register_toys(globals(), {f"toy_utils_{b}": _builder(f"toy_utils_{b}", b) for b in BUGS})
