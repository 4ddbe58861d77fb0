"""Toy timm models for the meta_init family, registered only by the harness's own tests,
each planting one way deferred init goes wrong. Importing this module registers them (it
also works as a pytest plugin: ``-p tests.toys.toy_meta_models``).

``toy_meta_ok`` does it the way timm 1.0.31 does: a computed non-persistent buffer (a
position table) recomputed by ``init_non_persistent_buffers()`` on the device and dtype
it is asked for, ``init_weights(needs_reset=True)`` that initializes every parameter, and
``device=`` / ``dtype=`` constructor kwargs honoured everywhere. Each ``toy_meta_<bug>``:

- ``item_in_init``: the constructor reads a value (``linspace(...).item()``, timm's drop
  path rates before 1.0.21), which cannot run under ``torch.device('meta')``;
- ``no_buffer_init``: the position table has no ``init_non_persistent_buffers``, so after
  ``to_empty`` nothing recomputes it;
- ``skips_on_meta``: the table is computed only if a parameter is not on meta (timm
  1.0.23-1.0.24, #2661), garbage under ``accelerate.init_empty_weights``;
- ``buffer_from_param``: the table is computed on a parameter's device (swin's attn_mask
  in 1.0.25-1.0.31), so it stays on meta under ``init_empty_weights``;
- ``init_misses_param``: ``init_weights`` forgets the head's bias;
- ``ignores_device`` / ``ignores_dtype``: the table ignores the ``device=`` / ``dtype=``
  kwarg (always on the default device / always float32).
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys

BUGS = ("ok", "item_in_init", "no_buffer_init", "skips_on_meta", "buffer_from_param", "init_misses_param",
        "ignores_device", "ignores_dtype")
CHANNELS = 8


def _table(n: int, device=None, dtype=None) -> torch.Tensor:
    return (torch.arange(n, device=device, dtype=torch.float32) + 1).sin().to(dtype or torch.float32)


class PosTable(nn.Module):
    def __init__(self, dim: int, bug: str, device=None, dtype=None):
        super().__init__()
        self.bug = bug
        self.scale = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))
        if bug == "ignores_device":
            self.register_buffer("table", _table(dim, dtype=dtype), persistent=False)
        elif bug == "ignores_dtype":
            self.register_buffer("table", _table(dim, device), persistent=False)
        elif bug == "skips_on_meta":
            table = torch.empty(dim, device=device, dtype=dtype)
            self.register_buffer("table", _table(dim, device, dtype) if not self.scale.is_meta else table,
                                 persistent=False)
        elif bug == "buffer_from_param":
            self.register_buffer("table", _table(dim, self.scale.device, self.scale.dtype), persistent=False)
        else:
            self.register_buffer("table", _table(dim, device, dtype), persistent=False)

    def init_non_persistent_buffers(self) -> None:
        if self.bug == "no_buffer_init":
            return
        self.table.copy_(_table(self.table.shape[0], self.table.device, self.table.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.scale * self.table)[None, :, None, None]


class ToyMetaNet(PooledLinearHead):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 drop_path_rate: float = 0.1, device=None, dtype=None, **kwargs):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if bug == "item_in_init":
            self.drop_path = [x.item() for x in torch.linspace(0, drop_path_rate, 2)]
        self.bug = bug
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = CHANNELS
        self.stem = nn.Conv2d(in_chans, CHANNELS, 3, 2, 1, **dd)
        self.norm = nn.BatchNorm2d(CHANNELS, **dd)
        self.pos = PosTable(CHANNELS, bug, **dd)
        self.head = nn.Linear(CHANNELS, num_classes, **dd) if num_classes > 0 else nn.Identity()
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights(needs_reset=False)

    def init_weights(self, needs_reset: bool = True) -> None:
        if needs_reset:
            for m in (self.stem, self.norm):
                m.reset_parameters()
            nn.init.ones_(self.pos.scale)
        if isinstance(self.head, nn.Linear):
            nn.init.normal_(self.head.weight, std=0.02)
            if self.bug != "init_misses_param":
                nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos(torch.relu(self.norm(self.stem(x))))


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyMetaNet, name, pretrained, bug=bug, **kwargs)


NAMES = register_toys(globals(), {f"toy_meta_{b}": _builder(f"toy_meta_{b}", b) for b in BUGS})
