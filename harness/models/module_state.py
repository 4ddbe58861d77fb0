"""A model put back as it was without copying it: every module object's attributes are
saved shallowly once, and ``restore`` reinstates them.

Why: reset_classifier runs about 20 steps on each of a model's 18 reset configs, each of
which must start from the configured model. A deep copy per step copies every module object
(hundreds in a ResNet-200 or a ConvFormer); restoring the saved attribute dicts costs a
dict copy per module. A step changes a model in three ways, and each is undone or caught:

- it sets attributes or replaces submodules (``model.fc = Linear(...)``, ``num_classes``):
  each module's ``__dict__`` (and its class) is put back, dicts, lists and sets copied one
  level deep so the saved ones are never the ones a later step mutates;
- it mutates a plain object in place below that first level (a nested list, an attribute
  of a helper object): ``not_restored`` names the module whose attribute state differs
  after restoring, so the caller knows not to trust the restored model;
- it writes into a tensor (``fc.bias.zero_()``): restoring attributes cannot undo that;
  the caller compares the tensors with a copy taken before (reset_classifier does).
"""
from __future__ import annotations

import torch
from torch import nn

_SCALARS = (str, bytes, int, float, bool, complex, type(None))
_CONTAINERS = (dict, list, set)
_MAX_DEPTH = 6


def _shallow(attrs: dict) -> dict:
    return {k: (v.copy() if isinstance(v, _CONTAINERS) else v) for k, v in attrs.items()}


def _value_state(v, depth: int = 0):
    """A comparable summary of a plain attribute value: scalars by value, containers by
    their items, modules and tensors by identity (their own state is compared apart), other
    objects by identity and (a level or two down) their attributes."""
    if isinstance(v, _SCALARS):
        return v if not (isinstance(v, float) and v != v) else ("nan",)
    if isinstance(v, (nn.Module, torch.Tensor)) or depth >= _MAX_DEPTH:
        return ("id", id(v))
    if isinstance(v, (list, tuple)):
        return (type(v), tuple(_value_state(x, depth + 1) for x in v))
    if isinstance(v, dict):
        return (type(v), tuple((repr(k), _value_state(x, depth + 1)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return (type(v), frozenset(x if isinstance(x, _SCALARS) else id(x) for x in v))
    if depth < 2 and not isinstance(v, type) and not callable(v) and isinstance(getattr(v, "__dict__", None), dict):
        return ("object", id(v), _value_state(vars(v), depth + 1))
    return ("id", id(v))


def _attribute_state(module: nn.Module) -> tuple:
    return (type(module), tuple((k, _value_state(v)) for k, v in vars(module).items()))


class ModuleSnapshot:
    """Every module's attributes (and class) in ``model`` when taken."""

    def __init__(self, model: nn.Module):
        self.model = model
        named = list(model.named_modules())
        self._modules = [(m, type(m), _shallow(vars(m))) for _, m in named]
        self._states = [(name or "the model", _attribute_state(m)) for name, m in named]

    def restore(self) -> nn.Module:
        """The model with every module's attributes and class as they were; returns it."""
        for module, cls, attrs in self._modules:
            if type(module) is not cls:
                module.__class__ = cls
            vars(module).clear()
            vars(module).update(_shallow(attrs))
        return self.model

    def not_restored(self) -> list[str]:
        """The modules whose attribute state still differs after ``restore``: a plain value
        mutated in place below the first level, which restoring cannot undo."""
        self.restore()
        return [f"attributes of {name}" for (m, _, _), (name, state) in zip(self._modules, self._states)
                if _attribute_state(m) != state]
