"""The features check family: what detection, segmentation and dense-prediction code builds
on. Every features model is built the way users build one, ``create_model(name,
features_only=True, pretrained=True, pretrained_cfg_overlay=dict(file=...))`` with the
harness's deterministic checkpoint, so all of them carry the same weights.

The reference of a model is its default wrapper at every level (``out_indices`` = all of
``feature_info``). Against it:
- ``out_indices`` default / subset / negative: the outputs are the reference levels asked
  for, in the order asked (bitwise), and ``feature_info`` (out_indices, module, channels,
  reduction) describes them, channels read from the tensors and strides measured;
  invalid ``out_indices`` raise, never return a shorter list;
- ``forward_intermediates``: the final output equals ``forward_features`` and the
  intermediates the reference (within the model's own float32 noise: other code path);
  intermediates_only, stop_early and other output formats change nothing (bitwise);
- every other wrapper (FeatureHookNet, FX, FeatureGetterNet) returns the reference;
- ``prune_intermediate_layers`` keeps the intermediates it was asked to keep;
- the pretrained load fills every backbone tensor; TorchScript where timm supports it.
Over --max-params the same runs on the meta device with shapes only.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from harness.checks import compare, meta_device
from harness.checks.feature_maps import (
    Budgeted,
    assert_info_matches,
    assert_maps_equal,
    float32_error,
    intermediates,
    layout_of,
    run,
    same_values_any_order,
    tap_as_map,
    tensor_list,
    to_nchw,
)
from harness.checks.numerics import describe_budget, float64_copy
from harness.models import build
from harness.models.feature_support import FeatureFacts
from harness.models.meta_limits import is_meta_limitation
from harness.registry import model_families
from harness.registry.tolerances import FEATURES
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, make_input

OUT_INDICES_CASES: tuple[str, ...] = ("default", "subset", "negative", "invalid")
INTERMEDIATES_CASES: tuple[str, ...] = ("all", "norm", "stop_early")
# wrapper classes TorchScript can compile (FeatureHookNet asserts it is not scripted;
# timm tests scripting of FeatureGetterNet nowhere) and the model-specific features classes
SCRIPTABLE_WRAPPERS = ("FeatureListNet", "FeatureDictNet", "FeatureGraphNet")
# timm's declared refusal of stop_early without intermediates_only (efficientnet, mobilenetv3)
EARLY_STOP_REFUSAL = re.compile(r"intermediates_only for early stopping")


# ---------------------------------------------------------------- cases and indices

def subset_indices(levels: int) -> tuple[int, ...]:
    """Ascending, non-contiguous where possible, without the last level (so the wrapper
    and pruning cut the model short). For 12 levels (3, 6, 10): a set() of those iterates
    as 10, 3, 6, the bug class of timm 1.0.7's FeatureGetterNet."""
    if levels >= 4:
        return tuple(sorted({levels // 4, levels // 2, levels - 2}))
    return tuple(range(levels - 1))


def negative_indices(levels: int) -> tuple[int, ...]:
    return (-3, -1) if levels >= 3 else (-1,)


def invalid_indices(levels: int) -> tuple[int, ...]:
    """One valid index and one past the last level."""
    return (0, levels)


def absolute(indices, levels: int) -> list[int]:
    if isinstance(indices, int):
        return list(range(levels - indices, levels))
    return [levels + i if i < 0 else i for i in indices]


def out_indices_cases(facts: FeatureFacts) -> list[str]:
    cases = list(OUT_INDICES_CASES)
    if not subset_indices(facts.levels):
        cases.remove("subset")
    return cases


def intermediates_cases(facts: FeatureFacts) -> list[str]:
    if not facts.intermediates:
        return []
    cases = [c for c in INTERMEDIATES_CASES if (c != "stop_early" or subset_indices(facts.levels))
             and (c != "norm" or facts.norm)]
    return cases + [f"output_fmt_{f}" for f in facts.alt_formats]


def script_supported(model_name: str, facts: FeatureFacts) -> bool:
    """timm supports scripting the features model: a scriptable wrapper (or the model's own
    features class) and a model not in timm's own TorchScript exclusions."""
    scriptable_cls = facts.default_cls in SCRIPTABLE_WRAPPERS or (
        facts.default_cls.endswith("Features") and not facts.default_cls.startswith("Feature"))
    return scriptable_cls and model_families.scripting_exception(model_name) is None


# ---------------------------------------------------------------- building

def _kwargs_text(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "pretrained_cfg_overlay")


def features_model(model_name: str, device: str, overlay: dict, **kwargs) -> nn.Module:
    """create_model(features_only=True, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs),
    a failure named with the call."""
    kwargs = dict(features_only=True, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    try:
        return build.create(model_name, device=device, **kwargs)
    except Exception as exc:
        raise AssertionError(f"create_model({model_name!r}, {_kwargs_text(kwargs)}) raised "
                             f"{type(exc).__name__}: {str(exc)[:500]}") from exc


def skip_on_meta_limit(exc: BaseException, what: str) -> None:
    meta_device.skip_on_meta_limit(exc, what, "construction and feature_info")


@dataclass
class FeatureReference:
    """The default features model at every level, built once per model and worker."""

    model: str
    device: str
    overlay: dict
    facts: FeatureFacts
    x: torch.Tensor
    levels: list[Budgeted]                     # level i of the all-levels model, in NCHW
    info: list[dict]                           # its feature_info dicts, one per level
    features: list[Budgeted] | None = None     # forward_features of the deterministic model (lazy)

    @property
    def values(self) -> list[torch.Tensor]:
        return [b.value for b in self.levels]

    def base(self) -> nn.Module:
        """A private copy of the deterministic model (the checkpoint's source)."""
        if self.device == "meta":
            return build.create(self.model, device="meta")
        return model_cache.deterministic(self.model, self.device)


_references: dict[tuple, FeatureReference] = {}


def reference(model_name: str, device: str, facts: FeatureFacts, input_size: tuple[int, ...],
              overlay: dict, cache_key: str) -> FeatureReference:
    """The model's FeatureReference (one kept per worker, the last asked for)."""
    key = (model_name, device, cache_key)
    if key not in _references:
        _references.clear()
        _references[key] = _make_reference(model_name, device, facts, input_size, overlay)
    return _references[key]


def _make_reference(model_name: str, device: str, facts: FeatureFacts, input_size, overlay) -> FeatureReference:
    if facts.build_error:
        raise AssertionError(f"create_model({model_name!r}, features_only=True) fails on the meta device: "
                             f"{facts.build_error}")
    every = tuple(range(facts.levels))
    fm = features_model(model_name, device, overlay, out_indices=every)
    x = (torch.empty((BATCH_SIZE, *input_size), device="meta") if device == "meta"
         else make_input(model_name, input_size, device=device))
    model64 = float64_copy(fm) if device != "meta" else None
    try:
        outs = tensor_list(run(fm, x, f"the features model with out_indices={every}"),
                           f"the features model with out_indices={every}")
    except Exception as exc:
        if device == "meta":
            skip_on_meta_limit(exc, "the features model")
        raise
    out64 = None
    if model64 is not None:
        try:
            out64 = tensor_list(run(model64, x.double(), "float64"), "float64")
        except Exception:  # noqa: BLE001 - no float64 run: the budget falls back to its floor
            out64 = None
    layout = layout_of(fm)
    outs, errs = to_nchw(outs, layout), float32_error(outs, out64)
    info = [dict(d) for d in fm.feature_info.get_dicts()]
    return FeatureReference(model_name, device, overlay, facts, x, [Budgeted(o, e) for o, e in zip(outs, errs)],
                            info)


def forward_features_reference(ref: FeatureReference) -> list[Budgeted]:
    """forward_features of the deterministic model (a tensor, or a list for multi-branch
    models such as CrossViT) with its float32 error, computed once per reference."""
    if ref.features is None:
        base = ref.base()
        base64 = float64_copy(base) if ref.device != "meta" else None
        out = _forward_features(base, ref.x)
        out64 = _forward_features(base64, ref.x.double()) if base64 is not None else None
        ref.features = [Budgeted(o, e) for o, e in zip(out, float32_error(out, out64))]
    return ref.features


def _forward_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor] | None:
    try:
        with torch.no_grad():
            out = model.forward_features(x)
    except Exception as exc:
        if x.is_meta:
            skip_on_meta_limit(exc, "forward_features")
        if x.dtype == torch.float64:
            return None
        raise AssertionError(f"forward_features raised {type(exc).__name__}: {str(exc)[:300]}") from exc
    return [out] if isinstance(out, torch.Tensor) else tensor_list(out, "forward_features")


# ---------------------------------------------------------------- out_indices

def _asked(case: str, levels: int):
    return {"default": None, "subset": subset_indices(levels), "negative": negative_indices(levels),
            "invalid": invalid_indices(levels)}[case]


def check_out_indices(ref: FeatureReference, case: str) -> None:
    """features_only=True at the case's out_indices (see the module docstring)."""
    n = ref.facts.levels
    asked = _asked(case, n)
    kwargs = {} if asked is None else {"out_indices": asked}
    if case == "invalid":
        return _check_invalid(ref, asked)
    fm = features_model(ref.model, ref.device, ref.overlay, **kwargs)
    what = f"features_only=True{', out_indices=' + repr(asked) if asked is not None else ''}"
    try:
        outs = tensor_list(run(fm, ref.x, what), what)
    except Exception as exc:
        if ref.device == "meta":
            skip_on_meta_limit(exc, what)
        raise
    expected = absolute(asked, n) if asked is not None else absolute(ref.facts.default_out_indices, n)
    info = fm.feature_info
    got = absolute(tuple(info.out_indices), n)
    if got != expected:
        raise AssertionError(f"{what}: feature_info.out_indices is {tuple(info.out_indices)} (levels {got}), "
                             f"asked for levels {expected}")
    modules = list(info.module_name())
    want = [ref.info[i]["module"] for i in expected]
    if modules != want:
        raise AssertionError(f"{what}: feature_info.module_name() is {modules}, the levels asked for are {want}")
    assert_maps_equal(to_nchw(outs, layout_of(fm)), [ref.levels[i] for i in expected], expected, f"{what}: outputs",
                      "that level of the all-levels features model", all_refs=ref.values)
    assert_info_matches(fm, outs, ref.x, what)
    if case == "default":
        assert_modules_output_levels(ref)


def _check_invalid(ref: FeatureReference, asked: tuple[int, ...]) -> None:
    """An out_indices past the last level is an error at build or first forward."""
    what = f"features_only=True, out_indices={asked!r} ({ref.facts.levels} levels)"
    try:
        fm = build.create(ref.model, device=ref.device, features_only=True, pretrained=True,
                          pretrained_cfg_overlay=ref.overlay, out_indices=asked)
        with torch.no_grad():
            outs = fm(ref.x)
    except Exception as exc:  # noqa: BLE001 - the expected outcome: refused
        if ref.device == "meta" and is_meta_limitation(exc):
            skip_on_meta_limit(exc, what)
        return
    count = len(outs) if isinstance(outs, (list, tuple, dict)) else type(outs).__name__
    raise AssertionError(f"{what} was accepted: it built and returned {count} tensor(s) for {len(asked)} "
                         f"indices, one of them past the last level (expected an error)")


def _tapped(module: nn.Module) -> nn.Module:
    """The module whose output a feature_info module name stands for: the module itself, or
    for a ModuleList (never called itself, e.g. CoaT's serial_blocks1) its last block."""
    while isinstance(module, nn.ModuleList) and len(module):
        module = module[-1]
    return module


def assert_modules_output_levels(ref: FeatureReference) -> None:
    """feature_info's module of each level produces that level: a forward hook on the named
    module of the deterministic model returns the level's tensor (in its layout: the same
    shape, the other channel order, or tokens holding the grid), bitwise or as the same
    values in another token order."""
    base = ref.base()
    modules = dict(base.named_modules())
    problems, taps = [], {}
    handles = []
    for i, d in enumerate(ref.info):
        name = d["module"]
        if name not in modules:
            top = ", ".join(list(dict(base.named_children()))[:8])
            problems.append(f"level {i}: feature_info names module {name!r}, which the model does not have "
                            f"(top-level modules: {top})")
            continue
        if name not in taps:
            taps[name] = []
            handles.append(_tapped(modules[name]).register_forward_hook(
                lambda m, a, out, _n=name: taps[_n].append(out)))
    try:
        run(base, ref.x, "the model's forward (with hooks at feature_info's modules)")
    except Exception as exc:
        if ref.x.is_meta:
            skip_on_meta_limit(exc, "the model's forward")
        raise
    finally:
        for h in handles:
            h.remove()
    for i, d in enumerate(ref.info):
        name, level = d["module"], ref.levels[i].value
        if name not in taps:
            continue
        outputs = [o for out in taps[name] for o in (out if isinstance(out, (list, tuple)) else [out])]
        if not outputs:
            problems.append(f"level {i}: module {name!r} is never called by the forward")
            continue
        mapped = [m for m in (tap_as_map(o, level, "NCHW") for o in outputs) if m is not None]
        if not mapped:
            shapes = ", ".join(str(tuple(o.shape)) for o in outputs if isinstance(o, torch.Tensor))
            problems.append(f"level {i}: module {name!r} outputs {shapes}, which cannot hold the level's "
                            f"map {tuple(level.shape)} (NCHW)")
        elif not level.is_meta and not any(torch.equal(m, level) or same_values_any_order(m, level)
                                           for m in mapped):
            problems.append(f"level {i}: the tensor returned is not the output of module {name!r}: "
                            f"{compare.error_summary(mapped[0], level)}")
    if problems:
        raise AssertionError(compare._listing("feature_info modules disagree with the tensors returned", problems))


# ---------------------------------------------------------------- forward_intermediates

def check_intermediates(ref: FeatureReference, case: str) -> None:
    """forward_intermediates in one configuration (see the module docstring)."""
    n = ref.facts.levels
    base = ref.base()
    x = ref.x
    tol = FEATURES
    try:
        if case == "all":
            what = "forward_intermediates(x, indices=None, norm=False, stop_early=False, output_fmt='NCHW')"
            final, inter = intermediates(base, x, what, indices=None, norm=False, stop_early=False,
                                         output_fmt="NCHW", intermediates_only=False)
            _assert_final(final, ref, what)
            assert_maps_equal(inter, ref.levels, list(range(n)), f"{what}: intermediates",
                              "that level of the features_only model", tol=tol, all_refs=ref.values)
            only = intermediates(base, x, f"{what[:-1]}, intermediates_only=True)", indices=None, norm=False,
                                 stop_early=False, output_fmt="NCHW", intermediates_only=True)
            assert_maps_equal(only, [Budgeted(t) for t in inter], list(range(n)),
                              "forward_intermediates(intermediates_only=True)", "the intermediates_only=False run")
        elif case == "norm":
            what = "forward_intermediates(x, norm=True)"
            final, inter = intermediates(base, x, what, norm=True)
            _assert_final(final, ref, what)
            if len(inter) != n:
                raise AssertionError(f"{what}: {len(inter)} intermediates for {n} levels")
            for i, (t, lv) in enumerate(zip(inter, ref.values)):
                want = (ref.info[i].get("num_chs_norm", lv.shape[1]),) + tuple(lv.shape[2:])
                compare.assert_shape((t.shape[1], *t.shape[2:]), want, f"{what}: intermediate {i} (C, H, W)")
                compare.assert_finite(t, f"{what}: intermediate {i}")
            only = intermediates(base, x, "forward_intermediates(x, norm=True, intermediates_only=True)",
                                 norm=True, intermediates_only=True)
            assert_maps_equal(only, [Budgeted(t) for t in inter], list(range(n)),
                              "forward_intermediates(norm=True, intermediates_only=True)",
                              "the norm=True, intermediates_only=False run")
        elif case == "stop_early":
            _check_stop_early(base, ref, subset_indices(n))
        elif case.startswith("output_fmt_"):
            _check_output_fmt(base, ref, case.removeprefix("output_fmt_"))
        else:
            raise ValueError(f"unknown forward_intermediates case {case!r}")
    except Exception as exc:
        if x.is_meta:
            skip_on_meta_limit(exc, f"forward_intermediates ({case})")
        raise


def _assert_final(final, ref: FeatureReference, what: str) -> None:
    """The final output equals forward_features(x) (tensor by tensor for multi-branch
    models) within the float32 budget."""
    wanted = forward_features_reference(ref)
    finals = [final] if isinstance(final, torch.Tensor) else tensor_list(final, f"{what}: final output")
    if len(finals) != len(wanted):
        raise AssertionError(f"{what}: final output has {len(finals)} tensors, forward_features(x) {len(wanted)}")
    for i, (got, ref_out) in enumerate(zip(finals, wanted)):
        part = f" [{i}]" if len(wanted) > 1 else ""
        want = ref_out.value
        compare.assert_shape(got.shape, want.shape, f"{what}: final output{part} vs forward_features(x){part}")
        if got.is_meta:
            continue
        err = (got.double() - want.double()).abs().max().item()
        budget = ref_out.budget(FEATURES)
        if not err <= budget:
            raise AssertionError(f"{what}: final output{part} differs from forward_features(x){part}: max abs err "
                                 f"{err:.3g} > budget {describe_budget(FEATURES, ref_out.err32 or 0.0, budget)} "
                                 f"({compare.error_summary(got, want)})")


def _check_stop_early(base: nn.Module, ref: FeatureReference, indices: tuple[int, ...]) -> None:
    """stop_early=True changes no intermediate before the stop, with and without norm."""
    levels = list(indices)
    for norm in (False, True) if ref.facts.norm else (False,):
        what = f"forward_intermediates(x, indices={list(indices)}, norm={norm}"
        _, full = intermediates(base, ref.x, what + ")", indices=list(indices), norm=norm)
        if not norm:
            assert_maps_equal(full, [ref.levels[i] for i in levels], levels, f"{what}): intermediates",
                              "that level of the features_only model", tol=FEATURES, all_refs=ref.values)
        early = _stopped_early(base, ref.x, what + ", stop_early=True)", indices=list(indices), norm=norm)
        if early is not None:
            assert_maps_equal(early, [Budgeted(t) for t in full], levels,
                              f"{what}, stop_early=True): intermediates", "the same call without stop_early")
        only = intermediates(base, ref.x, what + ", stop_early=True, intermediates_only=True)",
                             indices=list(indices), norm=norm, stop_early=True, intermediates_only=True)
        assert_maps_equal(only, [Budgeted(t) for t in full], levels,
                          f"{what}, stop_early=True, intermediates_only=True)", "the same call without stop_early")


def _stopped_early(base: nn.Module, x: torch.Tensor, what: str, **kwargs) -> list[torch.Tensor] | None:
    """The intermediates of forward_intermediates(stop_early=True, intermediates_only=False), or
    None where the model refuses that combination by design (efficientnet / mobilenetv3 assert
    'Must use intermediates_only for early stopping'; the intermediates_only call still runs)."""
    try:
        with torch.no_grad():
            out = base.forward_intermediates(x, stop_early=True, **kwargs)
    except AssertionError as exc:
        if EARLY_STOP_REFUSAL.search(str(exc)):
            return None
        raise AssertionError(f"{what} raised AssertionError: {str(exc)[:300]}") from exc
    except Exception as exc:
        if x.is_meta and is_meta_limitation(exc):
            raise
        raise AssertionError(f"{what} raised {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"{what} returned {type(out).__name__}, expected (final output, intermediates)")
    return tensor_list(out[1], what)


def _check_output_fmt(base: nn.Module, ref: FeatureReference, fmt: str) -> None:
    """output_fmt=fmt returns the NCHW intermediates in that layout, bitwise."""
    nchw = intermediates(base, ref.x, "forward_intermediates(x, intermediates_only=True)",
                         output_fmt="NCHW", intermediates_only=True)
    what = f"forward_intermediates(x, output_fmt={fmt!r}, intermediates_only=True)"
    other = intermediates(base, ref.x, what, output_fmt=fmt, intermediates_only=True)
    if len(other) != len(nchw):
        raise AssertionError(f"{what}: {len(other)} intermediates, NCHW gave {len(nchw)}")
    for i, (t, r) in enumerate(zip(other, nchw)):
        b, c, h, w = r.shape
        want = (b, h * w, c) if fmt == "NLC" else (b, h, w, c)
        compare.assert_shape(t.shape, want, f"{what}: intermediate {i}")
        as_nchw = (t.reshape(b, h, w, c) if fmt == "NLC" else t).permute(0, 3, 1, 2)
        if not t.is_meta and not torch.equal(as_nchw, r):
            raise AssertionError(f"{what}: intermediate {i} is not the NCHW map in {fmt} layout: "
                                 f"{compare.error_summary(as_nchw, r)}")


def check_prune(ref: FeatureReference) -> None:
    """prune_intermediate_layers(indices) returns the indices to take, and forward_intermediates
    of the pruned model at those indices gives the unpruned model's intermediates (bitwise)."""
    n = ref.facts.levels
    indices = subset_indices(n) or (0,)
    base = ref.base()
    x = ref.x
    try:
        _, unpruned = intermediates(base, x, f"forward_intermediates(x, indices={list(indices)})",
                                    indices=list(indices))
        what = f"prune_intermediate_layers(indices={list(indices)}, prune_norm=False, prune_head=True)"
        try:
            take = base.prune_intermediate_layers(indices=list(indices), prune_norm=False, prune_head=True)
        except Exception as exc:
            raise AssertionError(f"{what} raised {type(exc).__name__}: {str(exc)[:300]}") from exc
        if take is None or absolute(take, n) != list(indices):
            raise AssertionError(f"{what} returned {take!r}, expected the indices to take {list(indices)}")
        after = intermediates(base, x, f"forward_intermediates(x, indices={take!r}, intermediates_only=True) after "
                                       f"{what}", indices=take, intermediates_only=True)
    except Exception as exc:
        if x.is_meta:
            skip_on_meta_limit(exc, "prune_intermediate_layers")
        raise
    assert_maps_equal(after, [Budgeted(t) for t in unpruned], list(indices), f"after {what}: intermediates",
                      "the unpruned model's")


# ---------------------------------------------------------------- wrappers, pretrained, script

def check_wrapper(ref: FeatureReference, wrapper: str) -> None:
    """feature_cls=wrapper at the default out_indices returns the default wrapper's tensors:
    bitwise for hook / fx (they tap the same modules), within the float32 budget for the
    getter (forward_intermediates is another code path), with the same feature_info."""
    n = ref.facts.levels
    asked = tuple(ref.facts.default_out_indices)
    levels = absolute(asked, n)
    if wrapper == "fx":
        try:
            import torchvision.models.feature_extraction  # noqa: F401 - what timm's FX wrapper needs
        except ImportError:
            pytest.skip("feature_cls='fx' needs torchvision's FX feature extraction, not installed")
    fm = features_model(ref.model, ref.device, ref.overlay, out_indices=asked, feature_cls=wrapper)
    what = f"features_only=True, feature_cls={wrapper!r} ({type(fm).__name__}), out_indices={asked}"
    try:
        outs = tensor_list(run(fm, ref.x, what), what)
    except Exception as exc:
        if ref.x.is_meta:
            skip_on_meta_limit(exc, what)
        raise
    assert_maps_equal(to_nchw(outs, layout_of(fm)), [ref.levels[i] for i in levels], levels, f"{what}: outputs",
                      f"the default {ref.facts.default_cls}'s", tol=FEATURES if wrapper == "getter" else None,
                      all_refs=ref.values)
    got = absolute(tuple(fm.feature_info.out_indices), n)
    if got != levels or list(fm.feature_info.channels()) != [ref.info[i]["num_chs"] for i in levels]:
        raise AssertionError(f"{what}: feature_info (levels {got}, channels {fm.feature_info.channels()}) differs "
                             f"from the default wrapper's (levels {levels}, channels "
                             f"{[ref.info[i]['num_chs'] for i in levels]})")
    assert_info_matches(fm, outs, ref.x, what)


def _checkpoint_key(key: str, checkpoint: dict) -> str | None:
    """The checkpoint key a features-model key came from: itself, without the wrapper's prefix
    ('model.' of the getter, 'body.' of the hook wrapper), or with a flattened top-level
    Sequential ('stages_0.x' from 'stages.0.x')."""
    candidates = [key]
    for prefix in ("model.", "body."):
        if key.startswith(prefix):
            candidates.append(key[len(prefix):])
    head, _, rest = key.partition(".")
    for i, ch in enumerate(head):
        if ch == "_":
            candidates.append(f"{head[:i]}.{head[i + 1:]}" + (f".{rest}" if rest else ""))
    return next((c for c in candidates if c in checkpoint), None)


def check_features_pretrained(ref: FeatureReference, checkpoint: dict[str, torch.Tensor]) -> None:
    """The features model loaded from the checkpoint file holds every backbone tensor of it:
    each of its tensors maps to a checkpoint key (the wrapper may rename) and equals it."""
    fm = features_model(ref.model, ref.device, ref.overlay)
    problems = []
    for key, value in fm.state_dict().items():
        src = _checkpoint_key(key, checkpoint)
        if src is None:
            if key.rsplit(".", 1)[-1] == "num_batches_tracked":
                continue
            problems.append(f"{key}: no such tensor in the checkpoint (kept its init value)")
            continue
        expected = checkpoint[src]
        if tuple(value.shape) != tuple(expected.shape):
            problems.append(f"{key}: shape {tuple(value.shape)} vs checkpoint {src} {tuple(expected.shape)}")
        elif not value.is_meta and not torch.equal(value.detach().cpu(), expected.detach().cpu()):
            problems.append(f"{key}: differs from checkpoint {src}, {compare.error_summary(value, expected)}")
    if problems:
        raise AssertionError(compare._listing("features_only=True, pretrained=True: tensors not loaded from "
                                              "the checkpoint", problems))


def check_script(ref: FeatureReference) -> None:
    """The features model built under timm's set_scriptable(True) scripts with torch.jit.script
    and returns the eager outputs bitwise."""
    from timm.layers import set_scriptable

    if ref.device == "meta":
        pytest.skip("TorchScript needs real weights; over --max-params the features model is built on meta")
    with set_scriptable(True):
        fm = features_model(ref.model, ref.device, ref.overlay)
    try:
        scripted = torch.jit.script(copy.deepcopy(fm))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise AssertionError(f"torch.jit.script of the features model ({type(fm).__name__}) raised "
                             f"{type(exc).__name__}: {first}") from exc
    eager = tensor_list(run(fm, ref.x, "the eager features model"), "the eager features model")
    out = tensor_list(run(scripted, ref.x, "the scripted features model"), "the scripted features model")
    levels = absolute(tuple(ref.facts.default_out_indices), ref.facts.levels)
    assert_maps_equal(out, [Budgeted(t) for t in eager], levels, "the scripted features model", "the eager model's")
