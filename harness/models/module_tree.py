"""A model's module tree, for failure messages: every path and its class, the module whose
code raised, and the modules an in-place transformation left None."""
from __future__ import annotations

from torch import nn


def module_paths(model: nn.Module) -> dict[str, str]:
    """path -> class name of every non-root module."""
    return {name: type(m).__name__ for name, m in model.named_modules() if name}


def modules_left_none(before: dict[str, str], model: nn.Module) -> list[str]:
    """'path (was Class)' for each module of the original tree whose parent still exists
    but now holds None under that name (e.g. reparameterize set the attribute to None)."""
    left = []
    for path, cls in before.items():
        parent_path, _, attr = path.rpartition(".")
        try:
            parent = model.get_submodule(parent_path)
        except AttributeError:
            continue  # the parent itself was replaced (e.g. by fuse()); not a None attribute
        if getattr(parent, attr, 0) is None:
            left.append(f"{path} (was {cls})")
    return left


def failing_module(exc: BaseException, model: nn.Module) -> str | None:
    """Path of the innermost module of ``model`` whose method was running when exc was raised."""
    paths = {id(m): name for name, m in model.named_modules()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in paths:
            found = paths[id(owner)]
        tb = tb.tb_next
    return found
