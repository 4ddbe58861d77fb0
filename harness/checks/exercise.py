"""What each check family makes timm execute for one model, as steps a fingerprint traces
(harness.checks.fingerprint). Code that runs only for some inputs (another pool, a head
variant, another patch size) belongs to the step, and so to the family, that runs it.

Each step makes the same timm calls as its check, from the same tables (head variants and
load modes, the model family's pools and reset configs, the reparam sites, the patch
geometries), but without the check's assertions: an assertion that failed would stop the
step before the rest of the path ran. Steps run on the meta device, where the Python path
is the same and nothing is allocated; a step that raises there is run again on the CPU
(for models up to DEFAULT_MAX_PARAMS, which the checks run numerically), so what a step
records is what the check executes on the device it uses for that model.

A check family that starts calling more of timm adds the call to its steps here.
"""
from __future__ import annotations

import copy
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from harness.checks.create import construct, variant_input_size
from harness.checks.reset_classifier import reset_plan
from harness.models import build, heads
from harness.models.discovery import changed_geometries, patch_geometry, reparameterize_model
from harness.models.facts import ModelFacts
from harness.models.tracing import untraced
from harness.models.capabilities import Capabilities, capabilities_for
from harness.models.variants import LOAD_MODES, head_variants, reset_configs, reset_pools
from harness.registry.model_families import ModelFamily
from harness.weights import checkpoints
from harness.weights.deterministic import BATCH_SIZE, make_input

@dataclass
class Subject:
    """One model being exercised: its facts, family, a scratch directory, and the default
    build per device (made once, handed out as copies)."""

    name: str
    facts: ModelFacts
    family: ModelFamily
    workdir: Path
    _models: dict = field(default_factory=dict)
    _caps: list = field(default_factory=list)
    _files: dict = field(default_factory=dict)

    def model(self, device: str) -> nn.Module:
        if device not in self._models:
            self._models[device] = build.create(self.name, device=device)
        with untraced():
            return copy.deepcopy(self._models[device])

    @property
    def caps(self) -> Capabilities:
        """The discovered capabilities the checks' cases come from (pools, head and
        constructor kwargs, in_chans), gathered once."""
        if not self._caps:
            self._caps.append(capabilities_for(self.name))
        return self._caps[0]

    def input(self, device: str, size: tuple | None = None) -> torch.Tensor:
        size = tuple(size or self.facts.input_size)
        if device == "meta":
            return torch.empty((BATCH_SIZE, *size), device="meta")
        return make_input(self.name, size, device=device)

    def checkpoint(self, device: str) -> Path:
        """A .pth of the default build's state_dict (meta tensors on meta: torch.load gives
        them back as they were, so timm's file path runs with shapes only)."""
        if device not in self._files:
            state_dict = {k: v.detach() for k, v in self.model(device).state_dict().items()}
            if device == "meta":
                path = self.workdir / f"{device}.pth"
                torch.save(state_dict, path)
            else:
                path = checkpoints.write_native_checkpoint(state_dict, self.workdir / device, "pth")
            self._files[device] = path
        return self._files[device]


Step = Callable[[Subject, str], None]  # step(subject, device); raises where timm raised


def _forward(model: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        return model(x)


def _variant_input(s: Subject, device: str, variant) -> torch.Tensor:
    return s.input(device, variant_input_size(variant, s.facts.input_size))


def _create_steps(s: Subject) -> dict[str, Step]:
    """Every head variant the create family builds (the discovered ones included) and each
    discovered constructor kwarg, in eval and train mode (drop rates act in train)."""
    def step(variant):
        return lambda s, device: _forward(construct(s.name, device, LOAD_MODES[0], variant),
                                          _variant_input(s, device, variant))

    def ctor_step(kwargs):
        def run(s: Subject, device: str) -> None:
            model = build.create(s.name, device=device, **kwargs)
            _forward(model, s.input(device))
            _forward(model.train(), s.input(device))
        return run
    steps = {f"create:{v.id}": step(v) for v in head_variants(s.family, s.caps)}
    return {**steps, **{f"create:kwarg-{cid}": ctor_step(dict(kw)) for cid, kw in s.caps.ctor_kwargs.items()}}


def _pretrained_steps(s: Subject) -> dict[str, Step]:
    def step(mode, variant):
        def run(s: Subject, device: str) -> None:
            overlay = checkpoints.file_overlay(s.checkpoint(device))
            _forward(construct(s.name, device, mode, variant, overlay), _variant_input(s, device, variant))
        return run
    return {f"pretrained:{m.id}-{v.id}": step(m, v) for m in LOAD_MODES if m.pretrained
            for v in head_variants(s.family, s.caps)}


def _forward_steps(s: Subject) -> dict[str, Step]:
    """The forward every numeric family runs (golden, onnx, benchmark, compat, save_load),
    forward_features / forward_head(pre_logits=True) (golden, reset_classifier), and the
    train-mode forward of BN calibration (reparam, onnx)."""
    def eval_forward(s: Subject, device: str) -> None:
        model, x = s.model(device), s.input(device)
        _forward(model, x)
        if heads.supports_pre_logits(model):
            with torch.no_grad():
                feats = model.forward_features(x)
                model.forward_head(feats, pre_logits=True)
                model.forward_head(feats)

    def train_forward(s: Subject, device: str) -> None:
        model = s.model(device).train()
        _forward(model, s.input(device))
    return {"forward:eval": eval_forward, "forward:train": train_forward}


def _reset_steps(s: Subject) -> dict[str, Step]:
    """check_reset_classifier's plan (reset_plan) on a copy per sequence, each followed by
    the forward and, where the pool type is kept, pre-logits.

    The first sequence of each construction runs the whole forward, as the check does;
    after the others only ``forward_head`` runs, on features computed once, where the model
    has one. reset_classifier replaces the head, so forward_features runs the same code after
    every sequence, and a fingerprint is the union of what its steps ran: the whole forward
    after each of about 15 sequences made reset_classifier 80% of a model's trace time
    (regnetx_002: 103 of 131 s) and added no function."""
    def step(config):
        def run(s: Subject, device: str) -> None:
            base = build.create(s.name, device=device, **config) if config else s.model(device)
            x = s.input(device)
            pool = heads.current_pool_type(base)
            plan = reset_plan(base.num_classes, pool, s.family, reset_pools(s.family, s.caps), s.caps.unpooled)
            feats = None
            if heads.supports_pre_logits(base):
                with torch.no_grad():
                    feats = base.forward_features(x)
            for i, (calls, keeps_pool) in enumerate(plan.sequences()):
                with untraced():
                    model = copy.deepcopy(base)
                for args in calls:
                    model.reset_classifier(*args)
                with torch.no_grad():
                    model(x) if i == 0 or feats is None else model.forward_head(feats)
                    if keeps_pool and feats is not None:
                        model.forward_head(feats, pre_logits=True)
        return run
    configs = reset_configs(s.family, s.caps)
    return {f"reset_classifier:{cid}": step(dict(kw)) for cid, kw in configs.items()}


def _reparam_steps(s: Subject) -> dict[str, Step]:
    if not s.facts.reparam_sites:
        return {}

    def run(s: Subject, device: str) -> None:
        x = s.input(device)
        rep = reparameterize_model(s.model(device))
        _forward(rep, x)
        _forward(reparameterize_model(rep), x)
        fresh = reparameterize_model(build.create(s.name, device=device))
        fresh.load_state_dict(rep.state_dict(), strict=True)
        _forward(fresh, x)
    return {"reparam:reparameterize_model": run}


def _patch_steps(s: Subject) -> dict[str, Step]:
    geom = patch_geometry(s.name)
    if geom is None:
        return {}

    def step(kwargs):
        def run(s: Subject, device: str) -> None:
            overlay = checkpoints.file_overlay(s.checkpoint(device))
            model = build.create(s.name, device=device, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
            _forward(model, s.input(device, (3, *model.patch_embed.img_size)))
        return run
    return {f"patch_size:{gid}": step(kw) for gid, kw in changed_geometries(geom).items()}


def _feature_steps(s: Subject) -> dict[str, Step]:
    """features_only wrappers and forward_intermediates, where the model has them."""
    def features_only(s: Subject, device: str) -> None:
        _forward(build.create(s.name, device=device, features_only=True), s.input(device))

    def intermediates(s: Subject, device: str) -> None:
        model = s.model(device)
        if hasattr(model, "forward_intermediates"):
            with torch.no_grad():
                model.forward_intermediates(s.input(device))
    return {"features:features_only": features_only, "features:forward_intermediates": intermediates}


def _save_load_steps(s: Subject) -> dict[str, Step]:
    """The round trips of save_load and compat: torch.save(model) / torch.load, and a
    strict state_dict load into a fresh build."""
    def pickle_round_trip(s: Subject, device: str) -> None:
        buffer = io.BytesIO()
        torch.save(s.model(device), buffer)
        buffer.seek(0)
        _forward(torch.load(buffer, weights_only=False), s.input(device))

    def state_dict_round_trip(s: Subject, device: str) -> None:
        fresh = build.create(s.name, device=device)
        fresh.load_state_dict(s.model(device).state_dict(), strict=True)
        _forward(fresh, s.input(device))
    return {"save_load:pickle": pickle_round_trip, "save_load:state_dict": state_dict_round_trip}


# check family -> its steps for a subject (families not listed run the default forward,
# which the 'forward' steps cover: golden, onnx, benchmark, compat)
FAMILY_STEPS: dict[str, Callable[[Subject], dict[str, Step]]] = {
    "create": _create_steps,
    "pretrained": _pretrained_steps,
    "forward": _forward_steps,
    "reset_classifier": _reset_steps,
    "reparam": _reparam_steps,
    "patch_size": _patch_steps,
    "features": _feature_steps,
    "save_load": _save_load_steps,
}


def steps_for(subject: Subject) -> dict[str, Step]:
    """Every step of every family for one model, in a fixed order: '<family>:<step>'."""
    return {sid: fn for make in FAMILY_STEPS.values() for sid, fn in make(subject).items()}


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="harness-exercise-")
