"""Constructor kwargs timm exposes (drop rates, layer-scale init values, token and
position-embedding options, norm and act choices), wherever a model's constructor signature
has them (discovered, models.capabilities): each builds, runs, and has its declared effect
where it is observable (registry.capability_rules.KwargProbe.effect):

- dropout: in eval mode the output equals the model built without the rate (same
  deterministic weights); in train mode it differs (the rate is wired to something);
- init_value: timm's own init (before fill_deterministic) leaves some parameter equal to
  the value everywhere (timm 1.0.21's LayerScale reset gamma to ones);
- tokens: num_prefix_tokens matches the class/register tokens asked for, the
  forward_features token count is num_prefix_tokens + the patch grid, and pos_embed covers
  the grid plus, unless no_embed_class, the prefix tokens (timm 1.0.25 dropped the class
  token when pos_embed='none');
- module: the built model contains the layer class timm resolves the name to (for
  act_layer, where the default build holds an activation module to replace).

Over --max-params only what the meta device shows is checked (construction, shapes)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.checks import compare
from harness.models import build
from harness.registry import model_families
from harness.registry.capability_rules import kwarg_probe
from harness.weights import model_cache
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input, single_thread


@dataclass(frozen=True)
class KwargCase:
    id: str                   # e.g. 'init_values_0.0123'
    kwargs: dict[str, Any]    # what create_model gets (companions included)
    name: str                 # the kwarg under test

    @property
    def effect(self) -> str:
        rule = kwarg_probe(self.name)
        return rule.effect if rule is not None else "runs"

    def __repr__(self) -> str:
        return self.id


def _what(model_name: str, kwargs: dict) -> str:
    return f"create_model({model_name!r}, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _create(model_name: str, device: str, kwargs: dict, init: bool = False) -> nn.Module:
    try:
        if device == "meta":
            return build.create(model_name, device="meta", **kwargs)
        if init:
            return build.create(model_name, device=device, **kwargs)
        with model_cache.skip_init():
            return fill_deterministic(build.create(model_name, device=device, **kwargs), model_name)
    except Exception as exc:
        raise AssertionError(f"{_what(model_name, kwargs)} raised {type(exc).__name__}: {exc}") from exc


def _outputs(model: nn.Module, x: torch.Tensor, train: bool = False) -> list[torch.Tensor]:
    model.train(train)
    try:
        with torch.no_grad(), single_thread():
            torch.manual_seed(0)
            out = model(x)
    finally:
        model.eval()
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _run(model: nn.Module, model_name: str, input_size, device: str, what: str) -> list[torch.Tensor]:
    """Builds and runs: (B, num_classes) where there is a classifier, finite. Returns the
    eval-mode outputs (none on the meta device)."""
    x = (torch.empty((BATCH_SIZE, *input_size), device="meta") if device == "meta"
         else make_input(model_name, tuple(input_size), device=device))
    try:
        outs = None if device == "meta" else _outputs(model, x)
        out = build.meta_forward(model, x) if device == "meta" else outs[0]
    except Exception as exc:
        raise AssertionError(f"{what}: forward raised {type(exc).__name__}: {exc}") from exc
    if out is None:
        return []
    out = out[0] if isinstance(out, (list, tuple)) else out
    if out.shape[0] != BATCH_SIZE:
        raise AssertionError(f"{what}: output batch dim {out.shape[0]}, expected {BATCH_SIZE}")
    if getattr(model, "num_classes", 0):
        compare.assert_shape(out.shape, (BATCH_SIZE, model.num_classes), f"{what}: output")
    compare.assert_finite(out, f"{what}: output")
    return outs or []


@functools.lru_cache(maxsize=2)
def _reference_outputs(model_name: str, device: str, input_size: tuple) -> tuple[list, list]:
    """The default build's eval- and train-mode outputs (seed 0), the same for every rate a
    model has: computed once per worker, not once per dropout kwarg."""
    reference = model_cache.deterministic(model_name, device)
    x = make_input(model_name, input_size, device=device)
    return _outputs(reference, x), _outputs(reference, x, train=True)


def check_dropout(model_name: str, device: str, input_size, case: KwargCase) -> None:
    what = _what(model_name, case.kwargs)
    model = _create(model_name, device, case.kwargs)
    evaluated = _run(model, model_name, input_size, device, what)
    if device == "meta":
        return
    eval_ref, train_ref = _reference_outputs(model_name, device, tuple(input_size))
    for i, (a, b) in enumerate(zip(evaluated, eval_ref)):
        compare.assert_close(a, b, f"{what}: eval-mode output {i} vs the model built without {case.name}")
    train = _outputs(model, make_input(model_name, tuple(input_size), device=device), train=True)
    if all(a.shape == b.shape and torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(train, train_ref)):
        raise AssertionError(f"{what}: train-mode output equals the model built without {case.name} "
                             f"(same seed): the rate has no effect")


def _seeded_init(model_name: str, device: str, kwargs: dict) -> nn.Module:
    torch.manual_seed(0)  # two builds draw the same random init: only what the kwarg sets differs
    return _create(model_name, device, kwargs, init=True)


def check_init_value(model_name: str, device: str, input_size, case: KwargCase) -> None:
    """The layer-scale parameters of a model built with init value v (timm's own init, before
    fill_deterministic) all equal v. They are found without names: the parameters the kwarg
    adds to the default layout, those that change when v changes, and those of LayerScale
    modules, less those a model fixes by design (registry.model_families.FIXED_LAYER_SCALES). A
    model with none (the kwarg reaches no layer scale) shows no effect to check."""
    what = _what(model_name, case.kwargs)
    value = case.kwargs[case.name]
    if device == "meta":
        _run(_create(model_name, device, case.kwargs), model_name, input_size, device, what)
        return
    model = _seeded_init(model_name, device, case.kwargs)
    other = dict(_seeded_init(model_name, device, {**case.kwargs, case.name: value * 2}).named_parameters())
    default = build.create(model_name, device="meta").state_dict()
    params = dict(model.named_parameters())
    scaled = {f"{n}.{pn}" if n else pn for n, m in model.named_modules() if "layerscale" in type(m).__name__.lower()
              for pn, _ in m.named_parameters(recurse=False)}
    targets = sorted(n for n, p in params.items() if p.is_floating_point() and (
        n not in default or n in scaled or (n in other and not torch.equal(p.detach(), other[n].detach())))
        and model_families.fixed_layer_scale(model_name, n) is None)
    target = torch.tensor(float(value), dtype=torch.float32)
    wrong = [f"{n}: values in [{params[n].min().item():.4g}, {params[n].max().item():.4g}]" for n in targets
             if not torch.equal(params[n].detach().float().cpu(), target.expand(params[n].shape))]
    if wrong:
        raise AssertionError(compare._listing(f"{what}: layer-scale parameters of the initialised model do not "
                                              f"equal {case.name}={value}", wrong))
    _run(fill_deterministic(model, model_name), model_name, input_size, device, what)


def _grid_tokens(model: nn.Module, input_size) -> int | None:
    pe = getattr(model, "patch_embed", None)
    if pe is None:
        return None
    hw = tuple(input_size)[1:]
    if hasattr(pe, "dynamic_feat_size"):
        try:
            return math.prod(pe.dynamic_feat_size(hw))
        except Exception:  # noqa: BLE001 - fall back to the patch size
            pass
    patch = getattr(pe, "patch_size", None)
    if patch is None:
        return None
    patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return (hw[0] // patch[0]) * (hw[1] // patch[1])


def _features(model: nn.Module, model_name: str, input_size, device: str, what: str):
    x = (torch.empty((BATCH_SIZE, *input_size), device="meta") if device == "meta"
         else make_input(model_name, tuple(input_size), device=device))
    if device == "meta":
        return build.meta_forward(model.forward_features, x)
    try:
        with torch.no_grad():
            return model.forward_features(x)
    except Exception as exc:
        raise AssertionError(f"{what}: forward_features raised {type(exc).__name__}: {exc}") from exc


def check_tokens(model_name: str, device: str, input_size, case: KwargCase) -> None:
    what = _what(model_name, case.kwargs)
    default = build.create(model_name, device="meta")
    model = _create(model_name, device, case.kwargs)
    problems = []
    npt = getattr(model, "num_prefix_tokens", None)
    base_npt, base_reg = getattr(default, "num_prefix_tokens", 0), getattr(default, "num_reg_tokens", 0)
    value = case.kwargs[case.name]
    if case.name == "class_token" and npt is not None:
        has_cls = bool(getattr(default, "cls_token", None) is not None)
        expected = base_npt + (int(bool(value)) - int(has_cls))
        if npt != expected:
            problems.append(f"num_prefix_tokens is {npt}, expected {expected} with class_token={value}")
        if bool(value) != (getattr(model, "cls_token", None) is not None):
            problems.append(f"cls_token is {'absent' if value else 'present'} with class_token={value}")
    if case.name == "reg_tokens" and npt is not None and npt != base_npt - base_reg + value:
        problems.append(f"num_prefix_tokens is {npt}, expected {base_npt - base_reg + value} with reg_tokens={value}")
    grid = _grid_tokens(model, input_size)
    pos = getattr(model, "pos_embed", None)
    if case.name == "pos_embed" and value in ("none", "") and isinstance(pos, nn.Parameter):
        problems.append(f"pos_embed is a parameter of shape {tuple(pos.shape)} with pos_embed={value!r}")
    if isinstance(pos, torch.Tensor) and pos.dim() == 3 and grid is not None and npt is not None:
        no_embed = bool(getattr(model, "no_embed_class", False))
        expected = grid + (0 if no_embed else npt)
        if pos.shape[1] != expected:
            problems.append(f"pos_embed has {pos.shape[1]} positions, expected {expected} "
                            f"({grid} patches{'' if no_embed else f' + {npt} prefix tokens'})")
    feats = _features(model, model_name, input_size, device, what)
    if isinstance(feats, torch.Tensor) and feats.dim() == 3 and grid is not None and npt is not None:
        if feats.shape[1] != grid + npt:
            problems.append(f"forward_features returns {feats.shape[1]} tokens, expected num_prefix_tokens ({npt}) "
                            f"+ {grid} patches = {grid + npt}")
    if problems:
        raise AssertionError(compare._listing(f"{what}: token options disagree", problems))
    _run(model, model_name, input_size, device, what)


def check_module(model_name: str, device: str, input_size, case: KwargCase) -> None:
    what = _what(model_name, case.kwargs)
    model = _create(model_name, device, case.kwargs)
    value = case.kwargs[case.name]
    wanted = _layer_classes(case.name, value)
    if case.name == "act_layer" and not _has_activation(build.create(model_name, device="meta")):
        wanted = ()  # nothing for the kwarg to replace: checked to build and run
    if wanted and not any(isinstance(m, wanted) for m in model.modules()):
        forms = " or ".join(c.__name__ for c in wanted)
        raise AssertionError(f"{what}: no {forms} module in the built model ({case.name}={value!r} resolves to "
                             f"{'them' if len(wanted) > 1 else 'it'})")
    _run(model, model_name, input_size, device, what)


_ACTIVATION_MODULES = ("torch.nn.modules.activation", "timm.layers.activations", "timm.layers.activations_me")


def _has_activation(model: nn.Module) -> bool:
    """Whether the default build holds an activation module for act_layer to replace. Models
    whose norms carry their own nonlinearity hold none (resnetv2_50d_evos: EvoNorm2dS0 computes
    x * sigmoid(v * x) and takes act_layer into ``**_``): the kwarg is accepted and inert by
    design. Where the default has activations, a value that builds none is still a failure."""
    return any(type(m).__module__ in _ACTIVATION_MODULES for m in model.modules())


def _layer_classes(name: str, value) -> tuple[type, ...]:
    """The module classes ``name=value`` may build: the act layer, or the norm layer and its
    norm+act form (models that fuse the activation, EfficientNet, ResNetV2, CSPNet, VoVNet,
    build get_norm_act_layer(value): LayerNormAct2d for 'layernorm2d', not a LayerNorm2d)."""
    from timm import layers

    if name == "act_layer":
        found = [layers.get_act_layer(value)]
    else:
        found = [layers.get_norm_layer(value)]
        try:
            fused = layers.get_norm_act_layer(value)
        except Exception:  # noqa: BLE001 - a norm without a norm+act form: only the norm counts
            fused = None
        found.append(fused.func if isinstance(fused, functools.partial) else fused)
    return tuple(dict.fromkeys(c for c in found if isinstance(c, type)))


def check_runs(model_name: str, device: str, input_size, case: KwargCase) -> None:
    what = _what(model_name, case.kwargs)
    _run(_create(model_name, device, case.kwargs), model_name, input_size, device, what)


EFFECTS = {"dropout": check_dropout, "init_value": check_init_value, "tokens": check_tokens,
           "module": check_module, "runs": check_runs}


def check_constructor_kwarg(model_name: str, device: str, input_size, case: KwargCase) -> None:
    """One discovered constructor kwarg case. Raises AssertionError naming what differed."""
    EFFECTS[case.effect](model_name, device, input_size, case)
