"""Which failures of a meta-device run are the meta device's, not the model's.

A structural (meta) check may give up on an op without a meta kernel or a value read
from a meta tensor (``.item()``, ``.tolist()``, a Python ``bool``/``int`` of a tensor); any
other exception is the model's and must fail the check like it would on the CPU."""
from __future__ import annotations

import re

_META_MESSAGES = re.compile(
    r"cannot be called on meta tensors|Cannot copy out of meta tensor|meta device type tensor"
    r"|'Meta' backend|Meta backend|data-dependent", re.IGNORECASE)


def is_meta_limitation(exc: BaseException) -> bool:
    """NotImplementedError (no meta kernel), or a RuntimeError/TypeError that says it needed
    a value from a meta tensor."""
    if isinstance(exc, NotImplementedError):
        return True
    return isinstance(exc, (RuntimeError, TypeError)) and bool(_META_MESSAGES.search(str(exc)))
