"""The pretrained check: a head variant built with ``pretrained=True`` from a checkpoint
file the harness wrote (the deterministic default-config model, as .safetensors and
.pth) loads every tensor it should, keeps the forward contract, and with the default
head reproduces the source model's logits.

Pool and head-kwarg variants load the default-config checkpoint: where they keep the
state_dict layout the load is exact (and a pool's backbone features equal the source's);
where they change it, a loud refusal naming the differing keys is accepted and a load must
be exact outside them (check_pretrained_changed). in_chans variants must load the first conv as timm documents
its adaptation (models._manipulate.adapt_input_conv), re-implemented here from that
definition, never by calling it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.checks import compare
from harness.checks.create import (
    assert_forward_contract,
    assert_pool,
    check_create,
    construct,
    forward,
    variant_input_size,
)
from harness.models import build
from harness.models.variants import HeadVariant, LoadMode
from harness.weights import checkpoints, model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input


@dataclass
class SourceCheckpoint:
    """The deterministic default-config model, its state_dict, files and outputs: written
    once per model and worker, shared by every pretrained variant of that model."""

    state_dict: dict[str, torch.Tensor]
    files: dict[str, Path]
    logits: torch.Tensor | None  # None on the meta device
    features: torch.Tensor | None = None  # forward_features, where it is one tensor

    def overlay(self, device: str, fmt: str = "safetensors") -> dict[str, Any]:
        """The pretrained_cfg_overlay that loads this checkpoint (in memory on meta)."""
        return (checkpoints.state_dict_overlay(self.state_dict) if device == "meta"
                else checkpoints.file_overlay(self.files[fmt]))


def make_source(model_name: str, device: str, workdir: Path, input_size) -> SourceCheckpoint:
    if device == "meta":
        return SourceCheckpoint(build.create(model_name, device=device).state_dict(), {}, None)
    model = model_cache.deterministic(model_name, device)  # == create + fill_deterministic, built once per worker
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    files = {fmt: checkpoints.write_native_checkpoint(sd, workdir / model_name, fmt)
             for fmt in checkpoints.FORMATS}
    with torch.no_grad():
        x = make_input(model_name, input_size, device=device)
        logits = model(x).cpu()
        features = model.forward_features(x) if hasattr(model, "forward_features") else None
    return SourceCheckpoint(sd, files, logits, features.cpu() if isinstance(features, torch.Tensor) else None)


def check_pretrained(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                     source: SourceCheckpoint):
    """One pretrained cell of the matrix. Raises AssertionError naming what differed;
    returns the forward output it checked."""
    model = construct(model_name, device, mode, variant, source.overlay(device))
    compare.assert_loaded_from(model.state_dict(), source.state_dict,
                               build.classifier_prefixes(model_name), variant.changes_head)
    out = forward(model, model_name, input_size, device)
    assert_forward_contract(model, out, variant, BATCH_SIZE)
    if not variant.changes_head and source.logits is not None:
        compare.assert_close(out, source.logits, "logits of the pretrained model vs the checkpoint's source")
        other = construct(model_name, device, mode, variant, source.overlay(device, "pth"))
        compare.assert_close(forward(other, model_name, input_size, device), source.logits,
                             "logits after loading the .pth checkpoint")
    return out


def layout(sd) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def check_pretrained_changed(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                             source: SourceCheckpoint, must_load: bool = False):
    """A discovered variant (a pool, a head kwarg) loading the default-config checkpoint.

    Where the variant keeps the state_dict layout, or the model family says the variant must
    load (``must_load``: HRNet's head='' drops unused modules), every model tensor must come
    from the checkpoint (the classifier may change for a head kwarg), and for a pool the
    features before pooling equal the source's. Where the layout differs (catavgmax widens
    the classifier, 'map' adds an attention pool, head_hidden_size adds a layer), the
    checkpoint cannot cover the model: create_model may refuse loudly, with an error naming
    a key the layouts differ in, or load, and then every tensor outside those keys must be
    the checkpoint's. What fails is a silent partial load or a refusal for another reason."""
    meta = build.create(model_name, device="meta", **variant.kwargs)
    new, old = layout(meta.state_dict()), layout(source.state_dict)
    differ = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
    classifier = build.classifier_prefixes(model_name)
    if differ and not must_load:
        try:
            model = construct(model_name, device, mode, variant, source.overlay(device))
        except AssertionError as exc:
            if any(k in str(exc) for k in differ):
                return None  # refused loudly, naming what the checkpoint cannot hold
            raise
        compare.assert_loaded_from(model.state_dict(), source.state_dict, tuple(differ), True)
    else:
        model = construct(model_name, device, mode, variant, source.overlay(device))
        compare.assert_loaded_from(model.state_dict(), source.state_dict, classifier, variant.changes_head)
    assert_pool(model, variant)
    out = forward(model, model_name, input_size, device)
    assert_forward_contract(model, out, variant, BATCH_SIZE)
    if variant.kind == "pool" and not differ and source.features is not None:
        with torch.no_grad():
            feats = model.forward_features(make_input(model_name, input_size, device=device))
        compare.assert_close(feats.cpu(), source.features, f"forward_features with global_pool="
                                                           f"{variant.kwargs['global_pool']!r} vs the checkpoint's "
                                                           f"source (pooling comes after them)")
    return out


def _first_convs(model_name: str) -> tuple[str, ...]:
    first = build.pretrained_cfg(model_name).get("first_conv") or ()
    return (first,) if isinstance(first, str) else tuple(first)


def adapted_input_conv(weight: torch.Tensor, in_chans: int, base_chans: int = 3) -> torch.Tensor | None:
    """What timm documents for adapting an (O, I, kh, kw) first-conv weight trained on
    base_chans input channels to in_chans (adapt_input_conv's docstring): one channel sums the
    source channels (each spatial group of base_chans for a space-to-depth stem, I a multiple
    of base_chans); other counts take the source channels cyclically (0, 1, 2, 0, ...) scaled by
    base_chans / in_chans. None where no adaptation is defined (timm then keeps the layer's
    random init). Computed in float64 from the definition, not by calling timm."""
    w = weight.detach().double().cpu()
    out_ch, in_ch = w.shape[:2]
    if in_chans == base_chans:
        return weight
    if in_chans == 1:
        groups = in_ch // base_chans if in_ch > base_chans else 1
        width = base_chans if in_ch > base_chans else in_ch
        result = torch.stack([w[:, g * width:(g + 1) * width].sum(dim=1) for g in range(groups)], dim=1)
    elif in_ch != base_chans:
        return None
    else:
        result = w[:, [c % base_chans for c in range(in_chans)]] * (base_chans / in_chans)
    return result.to(weight.dtype)


def check_pretrained_in_chans(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                              source: SourceCheckpoint):
    """create_model(in_chans=C, pretrained=True): the first conv(s) hold the documented
    adaptation of the checkpoint's weights, every other tensor the checkpoint's own."""
    chans = variant.kwargs["in_chans"]
    model = construct(model_name, device, mode, variant, source.overlay(device))
    sd = model.state_dict()
    base = int((build.pretrained_cfg(model_name).get("input_size") or (3,))[0])
    expected, skipped, problems = dict(source.state_dict), [], []
    for conv in _first_convs(model_name):
        key = f"{conv}.weight"
        if key not in sd or key not in expected:
            problems.append(f"{key}: the pretrained cfg's first_conv {conv!r} names no weight of the "
                            f"{'model' if key not in sd else 'checkpoint'}")
            continue
        src = expected[key]
        if tuple(src.shape) == tuple(sd[key].shape):
            continue  # the stem does not depend on in_chans: loaded unchanged
        adapted = None if src.is_meta else adapted_input_conv(src, chans, base)
        if src.is_meta:
            adapted = torch.empty(sd[key].shape, device="meta")
        if adapted is None:
            skipped.append(key)  # documented: random init for this layer
            expected.pop(key)
            continue
        if tuple(adapted.shape) != tuple(sd[key].shape):
            problems.append(f"{key}: shape {tuple(sd[key].shape)}, the documented adaptation of the checkpoint's "
                            f"{tuple(src.shape)} to in_chans={chans} has {tuple(adapted.shape)}")
            continue
        if not adapted.is_meta:
            try:
                torch.testing.assert_close(sd[key].detach().cpu().double(), adapted.double())
            except AssertionError:
                problems.append(f"{key}: not the documented in_chans={chans} adaptation of the checkpoint, "
                                f"{compare.error_summary(sd[key], adapted)}")
        expected[key] = sd[key]  # checked above; the generic comparison below skips it
    if problems:
        raise AssertionError(compare._listing(f"create_model({model_name!r}, in_chans={chans}, pretrained=True): "
                                              f"first conv not adapted as documented", problems))
    compare.assert_loaded_from({k: v for k, v in sd.items() if k not in skipped}, expected, (), False)
    out = forward(model, model_name, variant_input_size(variant, input_size), device)
    assert_forward_contract(model, out, variant, BATCH_SIZE)
    return out


def check_variant(model_name: str, device: str, input_size, mode: LoadMode, variant: HeadVariant,
                  source: SourceCheckpoint | None, must_load: tuple[str, ...] = ()):
    """One cell of the create/pretrained matrix, whichever the load mode. ``must_load``: head
    kwargs whose variants must load the checkpoint whatever their layout (the model family's
    exception, ModelFamily.loads_pretrained). Returns the forward output it checked."""
    if mode.pretrained and (variant.kind == "pool" or variant.contract == "custom"):
        return check_pretrained_changed(model_name, device, input_size, mode, variant, source,
                                        must_load=any(k in must_load for k in variant.kwargs))
    if mode.pretrained and variant.kind == "in_chans":
        return check_pretrained_in_chans(model_name, device, input_size, mode, variant, source)
    if mode.pretrained:
        return check_pretrained(model_name, device, input_size, mode, variant, source)
    return check_create(model_name, device, input_size, mode, variant)
