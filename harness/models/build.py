"""Building models: on the CPU for numeric checks, on the meta device for structure.

The meta device gives parameter counts, state_dict layouts and output shapes of even
7B-parameter models without allocating their memory. Only APIs that timm 0.9.16 already
had are used here, so the same code drives every release under test.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from typing import Any

import torch
from torch import nn

# Never reach a model hub, whatever a pretrained config says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import timm.models  # noqa: E402

from harness.models import meta_ops  # noqa: E402

SHRINK_TARGET = 128  # max side of the input for models that accept any size


def timm_version() -> str:
    return timm.__version__


def timm_package_dir() -> str:
    """The directory of the imported timm package (an installed release or a checkout)."""
    return os.path.dirname(timm.__file__)


def entrypoint_module(model_name: str) -> str:
    return timm.models.model_entrypoint(model_name).__module__


@functools.lru_cache(maxsize=None)
def pretrained_cfg(model_name: str) -> dict[str, Any]:
    """The default pretrained config of a model as a plain dict ({} when it has none)."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    return cfg.to_dict() if cfg is not None else {}


def classifier_prefixes(model_name: str) -> tuple[str, ...]:
    """State-dict prefixes of the classifier(s) that timm drops when num_classes changes."""
    classifier = pretrained_cfg(model_name).get("classifier") or ()
    if isinstance(classifier, str):
        classifier = (classifier,)
    return tuple(f"{c}." for c in classifier)


@contextlib.contextmanager
def registered_on_meta():
    """Build with ordinary (CPU) tensors but move every parameter and buffer to the meta
    device as it is registered, so constructor code that reads values (older timm calls
    ``.item()`` on a linspace for drop-path rates) still works; peak memory is one tensor."""
    orig_param, orig_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def register_parameter(self, name, param):
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        orig_param(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        orig_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent=persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = orig_param, orig_buffer


def create(model_name: str, device: str | torch.device = "cpu", **kwargs: Any) -> nn.Module:
    """timm.create_model, on ``device``, in eval mode (BN uses its running statistics).

    On 'meta', construction runs under the meta device context (fast, nothing is
    allocated); constructors that need real values fall back to registered_on_meta()."""
    if str(device) != "meta":
        return timm.create_model(model_name, **kwargs).to(device).eval()
    with meta_ops.fast_meta_ops():  # the inits' meta kernels, not the model, are most of a meta build
        try:
            with torch.device("meta"):
                return timm.create_model(model_name, **kwargs).eval()
        except Exception:  # noqa: BLE001 - retried below; a real failure re-raises there
            with registered_on_meta():
                return timm.create_model(model_name, **kwargs).eval()


def flatten_outputs(out) -> list[torch.Tensor]:
    """A forward's output as a list of tensors (tensors, nested sequences and dicts)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    raise AssertionError(f"forward returned {type(out).__name__}, expected tensor(s)")


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# What the meta device cannot do (no data, no data-dependent shapes, ops without a meta
# kernel): NotImplementedError, or one of these messages. Any other exception from a
# meta forward is the model's own failure.
_META_LIMITATION = re.compile(r"meta tensors?\b|meta device|'Meta' backend|Meta kernel", re.IGNORECASE)


def is_meta_limitation(exc: BaseException) -> bool:
    """Whether an exception from a meta-device forward is the meta device's limitation
    (``.item()``, data access, a missing meta kernel) rather than the model's failure."""
    return isinstance(exc, NotImplementedError) or bool(_META_LIMITATION.search(str(exc)))


class MetaForwardError(AssertionError):
    """A meta-device forward raised something that is not a meta-device limitation."""


def meta_forward(model: nn.Module, x: torch.Tensor):
    """The output of a forward on the meta device (shapes only), or None where the meta
    device cannot run the model (``is_meta_limitation``). Any other failure raises
    MetaForwardError naming it: a model that breaks must not pass as "not shape-checkable"."""
    try:
        with torch.no_grad(), meta_ops.fast_meta_ops():
            return model(x)
    except Exception as exc:  # noqa: BLE001 - sorted below
        if is_meta_limitation(exc):
            return None
        raise MetaForwardError(f"forward on the meta device raised {type(exc).__name__}: {exc}"[:600]) from exc


def accepts_input(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether a meta forward at this input size works (a discovery probe: a size the
    model rejects is simply not used; numeric checks then run at the native size)."""
    try:
        with torch.no_grad(), meta_ops.fast_meta_ops():
            model(x)
        return True
    except Exception:  # noqa: BLE001 - any rejection means "use the native size"
        return False


def choose_input_size(model_name: str, meta_model: nn.Module | None) -> tuple[int, ...]:
    """The input size numeric checks use: the config's fixed size when set, otherwise the
    size shrunk to SHRINK_TARGET if a meta-device forward proves the model accepts it
    (ViTs with strict img_size do not), otherwise the native size."""
    cfg = pretrained_cfg(model_name)
    native = tuple(cfg.get("input_size") or (3, 224, 224))
    if cfg.get("fixed_input_size") or meta_model is None:
        return native
    if max(native[1:]) <= SHRINK_TARGET:
        return native
    min_size = cfg.get("min_input_size")
    candidate = tuple(min_size) if min_size else (native[0], *(min(s, SHRINK_TARGET) for s in native[1:]))
    if accepts_input(meta_model, torch.empty((2, *candidate), device="meta")):
        return candidate
    return native
