"""Toy timm models for the onnx check, registered only by the harness's own tests, each
planting one way an ONNX export goes wrong. Importing this module registers them (it also
works as a pytest plugin: ``-p tests.toys.toy_onnx_models``).

``toy_onnx_ok`` exports correctly with both exporters. ``toy_onnx_baked_batch`` has a head
that reads the batch size as a Python int (``int(x.shape[0])``) to reshape: eager is right
at any batch, but the TorchScript tracer records the constant 2 (onnxruntime then returns
2 rows for 3 inputs) and the dynamo exporter specializes the batch axis to 2.
``toy_onnx_export_differs`` computes 1% more while being exported (``torch.onnx.is_in_onnx_export``
for the TorchScript exporter, ``torch.compiler.is_exporting`` for torch.export): the graph
runs and has the right shapes, only its numbers differ from eager.
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.registry import register_toys, toy_cfg

BUGS = ("ok", "baked_batch", "export_differs")
CHANNELS = 8


class FlattenHead(nn.Module):
    def __init__(self, dim: int, num_classes: int, bug: str):
        super().__init__()
        self.bug = bug
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = int(x.shape[0]) if self.bug == "baked_batch" else x.shape[0]
        x = x.reshape(batch, x.shape[1], -1).mean(-1)
        if self.bug == "export_differs" and (torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()):
            x = x * 1.01
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


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyOnnxNet, name, pretrained, bug=bug, **kwargs)


NAMES = register_toys(globals(), {f"toy_onnx_{b}": _builder(f"toy_onnx_{b}", b) for b in BUGS},
                      {f"toy_onnx_{b}.harness": toy_cfg(first_conv="stem.0", classifier="head.fc") for b in BUGS})
