"""The test-id grammar the contract fixes, and the one parser of it.

A suite test's id is ``path::function[<param id>]``; the parameter id starts with the
model name, followed by ``-`` and the variant (``resnet18-pretrained-default``), or, in
the patch_size family, by ``.<pretrained tag>`` first (``vit_tiny_patch16_224.augreg_in21k-
timm-original``). timm model names never contain ``-`` or ``.``, so the model is the
parameter id up to the first of either. Every consumer (summary, results, progress,
scheduling, shards) uses ``model_of``."""
from __future__ import annotations

import re

_PARAM = re.compile(r"\[(.*)\]$")


def param_id(nodeid: str) -> str | None:
    """The parameter id of a node id, or None for an unparametrized test."""
    match = _PARAM.search(nodeid)
    return match.group(1) if match else None


def model_of(nodeid: str) -> str:
    """The model of a test id; tests without parameters map to their function name."""
    pid = param_id(nodeid)
    if pid is None:
        return nodeid.split("::")[-1]
    return re.split(r"[-.]", pid, maxsplit=1)[0]
