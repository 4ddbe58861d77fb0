"""Toy timm models for the onnx check, registered only by the harness's own tests, each
planting one way an ONNX export goes wrong. Importing this module registers them (it also
works as a pytest plugin: ``-p tests.toy_onnx_models``).

``toy_onnx_ok`` exports correctly with both exporters. ``toy_onnx_baked_batch`` has a head
that reads the batch size as a Python int (``int(x.shape[0])``) to reshape: eager is right
at any batch, but the TorchScript tracer records the constant 2 (onnxruntime then returns
2 rows for 3 inputs) and the dynamo exporter specializes the batch axis to 2.
"""
from __future__ import annotations

import torch
from torch import nn

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

BUGS = ("ok", "baked_batch")
CHANNELS = 8


class FlattenHead(nn.Module):
    def __init__(self, dim: int, num_classes: int, bug: str):
        super().__init__()
        self.bug = bug
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = int(x.shape[0]) if self.bug == "baked_batch" else x.shape[0]
        x = x.reshape(batch, x.shape[1], -1).mean(-1)
        return self.fc(x)


class ToyOnnxNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = CHANNELS
        self.stem = nn.Sequential(nn.Conv2d(in_chans, CHANNELS, 3, 2, 1), nn.BatchNorm2d(CHANNELS), nn.ReLU())
        self.head = FlattenHead(CHANNELS, num_classes, bug)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean((2, 3)) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = FlattenHead(CHANNELS, num_classes, self.head.bug)


def _cfg(**kwargs):
    return dict(url="", num_classes=1000, input_size=(3, 32, 32), pool_size=(16, 16), crop_pct=1.0,
                mean=(0.5,) * 3, std=(0.5,) * 3, first_conv="stem.0", classifier="head.fc", **kwargs)


NAMES = [f"toy_onnx_{b}" for b in BUGS]
default_cfgs = generate_default_cfgs({f"{n}.harness": _cfg() for n in NAMES})


def _entrypoint(name: str, bug: str):
    def entrypoint(pretrained: bool = False, **kwargs):
        return build_model_with_cfg(ToyOnnxNet, name, pretrained, bug=bug, **kwargs)
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    return entrypoint


for _name in NAMES:
    globals()[_name] = register_model(_entrypoint(_name, _name[len("toy_onnx_"):]))
