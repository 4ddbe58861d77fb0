"""Toy timm models for the differential check (harness.checks.differential), registered
only by the harness's own tests (``-p tests.toys.toy_diff_models``). ``toy_diff_ok`` scales
its logits by ``1 + HARNESS_TOY_DRIFT`` (an environment variable, 0 by default), so a
"release" that exported with no drift and a candidate that runs with one differ exactly as a
silent numeric change between two timm releases would. With ``HARNESS_TOY_INTENDED`` set,
the change is declared intended (registry.intended_changes) from release 1.0.1 on."""
from __future__ import annotations

import os

import torch
from timm.models import build_model_with_cfg

from harness.registry.intended_changes import IntendedChange, register_intended_changes
from tests.toys.registry import register_toys
from tests.toys.toy_models import ToyNet


class DriftingNet(ToyNet):
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        out = super().forward_head(x, pre_logits)
        return out if pre_logits else out * (1.0 + float(os.environ.get("HARNESS_TOY_DRIFT", "0")))


NAMES = register_toys(globals(), {"toy_diff_ok": lambda pretrained, **kwargs: build_model_with_cfg(
    DriftingNet, "toy_diff_ok", pretrained, **kwargs)})

if os.environ.get("HARNESS_TOY_INTENDED"):
    register_intended_changes(IntendedChange("toy_diff_*", "1.0.1",
                                             reason="planted: the toy's logits drift on purpose"))
