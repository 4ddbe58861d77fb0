"""The create check: construct a head variant of a model, then assert the forward
contract ((B, num_classes), (B, num_features), unpooled features; finite). The
pretrained check (checks.pretrained) builds on the same construction and contract."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.checks import compare
from harness.models import build, heads
from harness.models.variants import HeadVariant, LoadMode
from harness.weights.deterministic import BATCH_SIZE, make_input


def construct(model_name: str, device: str, mode: LoadMode, variant: HeadVariant,
              overlay: dict[str, Any] | None = None) -> nn.Module:
    """create_model with the variant's kwargs (and, for a pretrained mode, the mode's
    kwargs, pretrained=True and ``pretrained_cfg_overlay=overlay``)."""
    kwargs = dict(variant.kwargs)
    if mode.pretrained:
        kwargs.update(mode.kwargs, pretrained=True, pretrained_cfg_overlay=overlay)
    try:
        return build.create(model_name, device=device, **kwargs)
    except Exception as exc:
        raise AssertionError(
            f"create_model({model_name!r}, {_fmt_kwargs(mode, variant)}) raised "
            f"{type(exc).__name__}: {exc}") from exc


def _fmt_kwargs(mode: LoadMode, variant: HeadVariant) -> str:
    kw = dict(variant.kwargs)
    if mode.pretrained:
        kw.update(mode.kwargs, pretrained=True)
    return ", ".join(f"{k}={v!r}" for k, v in kw.items()) or "defaults"


def forward(model: nn.Module, model_name: str, input_size, device: str):
    """The output; on 'meta' its shapes only, or None where the model cannot run there
    (the structure was still checked)."""
    if device == "meta":
        return build.meta_forward(model, torch.empty((BATCH_SIZE, *input_size), device="meta"))
    with torch.no_grad():
        return model(make_input(model_name, input_size, device=device))


def assert_forward_contract(model: nn.Module, out, variant: HeadVariant, batch: int) -> None:
    requested = variant.kwargs.get("num_classes")
    if requested is not None and getattr(model, "num_classes", requested) != requested:
        raise AssertionError(f"model.num_classes is {model.num_classes}, expected {requested}")
    if out is None:
        return
    where = f"forward output for head variant {variant.id!r}"
    contract = variant.contract
    if contract == "classes" and getattr(model, "num_classes", None) == 0:
        contract = "features"  # e.g. MIM-pretrained configs whose default head is empty
    if isinstance(out, (list, tuple)) and contract in ("custom", "unpooled"):
        # multi-branch features (HRNet head='', EfficientViM global_pool='')
        for i, t in enumerate(out):
            assert_batch_features(t, batch, f"{where}[{i}]", unpooled=contract == "unpooled")
        return
    shape = tuple(out.shape)
    if shape[0] != batch:
        raise AssertionError(f"{where}: batch dim {shape[0]}, expected {batch} (shape {shape})")
    if contract == "classes":
        compare.assert_shape(shape, (batch, model.num_classes), where)
    elif contract == "features":
        dims = heads.feature_dims(model)
        if len(shape) != 2 or shape[1] not in dims:
            raise AssertionError(f"{where}: shape {shape}, expected (B, num_features) with "
                                 f"num_features in {sorted(dims)}")
    elif contract == "unpooled":
        assert_batch_features(out, batch, where, unpooled=True)
    compare.assert_finite(out, where)


def assert_batch_features(t: torch.Tensor, batch: int, where: str, unpooled: bool) -> None:
    """Batch-first, finite, and (for unpooled features) with spatial or token dims left."""
    if t.shape[0] != batch:
        raise AssertionError(f"{where}: batch dim {t.shape[0]}, expected {batch} (shape {tuple(t.shape)})")
    if unpooled and t.dim() < 3:
        raise AssertionError(f"{where}: shape {tuple(t.shape)} is pooled; num_classes=0, global_pool='' "
                             f"must return unpooled features (>= 3 dims)")
    compare.assert_finite(t, where)


def variant_input_size(variant: HeadVariant, input_size) -> tuple[int, ...]:
    """The input size a variant runs at: the model's, with in_chans channels for an
    in_chans variant."""
    chans = variant.kwargs.get("in_chans")
    return (chans, *tuple(input_size)[1:]) if chans is not None else tuple(input_size)


def assert_pool(model: nn.Module, variant: HeadVariant) -> None:
    """A pool variant builds the pool it asked for (where the model exposes its pool type)."""
    if variant.kind != "pool":
        return
    asked, built = variant.kwargs["global_pool"], heads.current_pool_type(model)
    if built is not None and built != asked:
        raise AssertionError(f"create_model(global_pool={asked!r}) built a model whose pool type is {built!r}")


def check_create(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant):
    """One scratch cell of the matrix. Raises AssertionError naming what differed; returns
    the forward output it checked (None where the meta device cannot run the model)."""
    model = construct(model_name, device, mode, variant)
    assert_pool(model, variant)
    out = forward(model, model_name, variant_input_size(variant, input_size), device)
    assert_forward_contract(model, out, variant, BATCH_SIZE)
    return out
