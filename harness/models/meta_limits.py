"""Which failures of a meta-device run are the meta device's, not the model's.

A structural (meta) check may give up on an op without a meta kernel or a value read
from a meta tensor (``.item()``, ``.tolist()``, a Python ``bool``/``int`` of a tensor); any
other exception is the model's and must fail the check like it would on the CPU."""
from __future__ import annotations

import re

_META_MESSAGES = re.compile(
    r"cannot be called on meta tensors|Cannot copy out of meta tensor|meta device type tensor"
    r"|'Meta' backend|Meta backend|data-dependent"
    # a model that keeps a CPU tensor outside its parameters and buffers (DINOv3's RoPE in timm
    # 1.0.21): moving it to meta leaves that tensor behind
    r"|Tensor on device cpu is not on the expected device meta", re.IGNORECASE)


def is_meta_limitation(exc: BaseException) -> bool:
    """NotImplementedError (no meta kernel), or a RuntimeError/TypeError that says it needed
    a value from a meta tensor or met a CPU tensor the model does not register."""
    if isinstance(exc, NotImplementedError):
        return True
    return isinstance(exc, (RuntimeError, TypeError)) and bool(_META_MESSAGES.search(str(exc)))
