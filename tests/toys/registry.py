"""The one way toys are registered with timm: an entry point per name, in the toy
module's namespace, with a pretrained cfg per tag, exactly as timm's own model modules
do it (``generate_default_cfgs`` + ``register_model``), so the harness discovers toys
like any registered model."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from timm.models import generate_default_cfgs, register_model

Builder = Callable[..., Any]  # builder(pretrained, **kwargs) -> nn.Module


def toy_cfg(**overrides: Any) -> dict:
    """A pretrained cfg for a 32 px toy: no weight source, 1000 classes, stem / head."""
    return dict(dict(url="", num_classes=1000, input_size=(3, 32, 32), pool_size=(16, 16), crop_pct=1.0,
                     mean=(0.5,) * 3, std=(0.5,) * 3, first_conv="stem", classifier="head"), **overrides)


def register_toys(namespace: dict, builders: Mapping[str, Builder],
                  cfgs: Mapping[str, Mapping] | None = None) -> list[str]:
    """Register ``name -> builder(pretrained, **kwargs)`` as timm models defined in the
    module whose ``globals()`` is ``namespace``; ``cfgs`` maps 'name.tag' to a pretrained
    cfg (default: one 'name.harness' tag with ``toy_cfg()``). Returns the names."""
    cfgs = cfgs if cfgs is not None else {f"{name}.harness": toy_cfg() for name in builders}
    namespace["default_cfgs"] = {**namespace.get("default_cfgs", {}), **generate_default_cfgs(dict(cfgs))}
    for name, builder in builders.items():
        def entrypoint(pretrained: bool = False, _builder: Builder = builder, **kwargs):
            return _builder(pretrained, **kwargs)
        entrypoint.__name__ = entrypoint.__qualname__ = name
        entrypoint.__module__ = namespace["__name__"]
        namespace[name] = register_model(entrypoint)
    return list(builders)
