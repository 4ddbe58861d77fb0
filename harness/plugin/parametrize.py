"""The named parametrizers: how each suite test's parameters are generated from the run's
model cases. A suite names its parametrizer explicitly with ``@pytest.mark.cases(NAME)``
(or ``pytestmark``); the parametrizer declares the argnames it fills, the first always
``model_case``, and every parameter id starts with the model name (the contract's
test-id grammar, registry.test_ids).

    @parametrizer("reparam")
    def _reparam(cases, config): ...  # -> list of pytest.param(model_case, ..., id=...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

from harness.checks.meta_init import applicable as meta_init_variants
from harness.checks.onnx import EXPORTERS
from harness.checks.patch_size import patch_cases
from harness.checks.surface import IMPORT_CHECKS
from harness.checks.transforms import applicable as applicable_transforms
from harness.models.variants import LOAD_MODES, head_variants
from harness.plugin.collection import (
    ModelCase,
    compat_sets,
    model_cases,
    package_case,
    registry_baselines,
)
from harness.plugin.options import HarnessOptions

Make = Callable[[list[ModelCase], pytest.Config], list]


@dataclass(frozen=True)
class Parametrizer:
    argnames: tuple[str, ...]
    make: Make


PARAMETRIZERS: dict[str, Parametrizer] = {}


def parametrizer(name: str, *argnames: str) -> Callable[[Make], Make]:
    """Register ``make(cases, config) -> [pytest.param(model_case, *rest, id=...)]`` under
    ``name``, filling ``model_case`` and ``argnames``."""
    def register(make: Make) -> Make:
        if name in PARAMETRIZERS:
            raise ValueError(f"parametrizer {name!r} is registered twice")
        PARAMETRIZERS[name] = Parametrizer(("model_case", *argnames), make)
        return make
    return register


@parametrizer("models")
def _models(cases: list[ModelCase], config: pytest.Config) -> list:
    """One test per model: id '<model>'."""
    return [pytest.param(c, id=c.model) for c in cases]


@parametrizer("create", "load_mode", "head_variant")
def _create(cases: list[ModelCase], config: pytest.Config) -> list:
    """Load mode x head variant, marked create (scratch) or pretrained: '<model>-<mode>-<head>'."""
    return [pytest.param(c, mode, head, id=f"{c.model}-{mode.id}-{head.id}",
                         marks=getattr(pytest.mark, mode.check))
            for c in cases for mode in LOAD_MODES for head in head_variants(c.family)]


@parametrizer("reset_classifier", "reset_config")
def _reset(cases: list[ModelCase], config: pytest.Config) -> list:
    """The default construction plus the model family's reset configs: '<model>-<config>'."""
    return [pytest.param(c, (cid, dict(kwargs)), id=f"{c.model}-{cid}")
            for c in cases for cid, kwargs in {"default": {}, **c.family.reset_configs}.items()]


@parametrizer("reparam")
def _reparam(cases: list[ModelCase], config: pytest.Config) -> list:
    """Only reparameterizable models (discovered reparam sites): '<model>'."""
    return [pytest.param(c, id=c.model) for c in cases if c.facts.reparam_sites]


@parametrizer("onnx", "exporter", "reparameterized")
def _onnx(cases: list[ModelCase], config: pytest.Config) -> list:
    """Each model x exporter, plus the same after reparameterize_model for models with
    reparam sites: '<model>-<exporter>' and '<model>-<exporter>-reparam'."""
    return [pytest.param(c, exporter, rep, id=f"{c.model}-{exporter}{'-reparam' if rep else ''}")
            for c in cases for rep in ((False, True) if c.facts.reparam_sites else (False,))
            for exporter in EXPORTERS]


@parametrizer("patch_size", "patch_case")
def _patch_size(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per (pretrained tag, its checkpoint family, geometry) of patch-embedding
    models (probed on the meta device): '<model>.<tag>-<family>-<geometry>'."""
    return [pytest.param(c, pc, id=repr(pc)) for c in cases for pc in patch_cases(c.model)]


@parametrizer("compat", "compat_artifact")
def _compat(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per (model, baseline release) of --compat-dir: '<model>-<baseline version>'."""
    by_model = {c.model: c for c in cases}
    return [pytest.param(by_model[s.model], s, id=f"{s.model}-{s.version}")
            for s in compat_sets(config) if s.model in by_model]


@parametrizer("transforms", "transform")
def _transforms(cases: list[ModelCase], config: pytest.Config) -> list:
    """Each transform that applies (TorchScript/FX where timm claims them, inductor with
    --device cuda): '<model>-<transform>'."""
    cuda = HarnessOptions.from_config(config).device == "cuda"
    return [pytest.param(c, t, id=f"{c.model}-{t}") for c in cases for t in applicable_transforms(c.model, cuda)]


@parametrizer("meta_init", "variant")
def _meta_init(cases: list[ModelCase], config: pytest.Config) -> list:
    """meta_to_empty and accelerate for every model, init_weights and device_dtype where the
    signatures declare them (cached facts): '<model>-<variant>'."""
    return [pytest.param(c, v, id=f"{c.model}-{v}") for c in cases for v in meta_init_variants(c.facts)]


@parametrizer("train_checkpoint", "compat_artifact")
def _train_checkpoint(cases: list[ModelCase], config: pytest.Config) -> list:
    """The candidate's own training checkpoint, '<model>-candidate' (compat_artifact None),
    and each one a baseline release wrote into --compat-dir, '<model>-<baseline version>'."""
    by_model = {c.model: c for c in cases}
    return [pytest.param(c, None, id=f"{c.model}-candidate") for c in cases] + \
        [pytest.param(by_model[s.model], s, id=f"{s.model}-{s.version}") for s in compat_sets(config)
         if s.model in by_model]


@parametrizer("surface_import", "import_check")
def _surface_import(cases: list[ModelCase], config: pytest.Config) -> list:
    """Package-level import checks: 'timm-warnings_as_errors', 'timm-deprecated_aliases'."""
    case = package_case()
    return [pytest.param(case, check, id=f"{case.model}-{check}") for check in IMPORT_CHECKS]


@parametrizer("surface_baseline", "baseline")
def _surface_baseline(cases: list[ModelCase], config: pytest.Config) -> list:
    """One per baseline registry dump in --compat-dir: 'timm-<baseline version>'."""
    case = package_case()
    return [pytest.param(case, (version, path), id=f"{case.model}-{version}")
            for version, path in registry_baselines(config)]


def generate_tests(metafunc: pytest.Metafunc) -> None:
    """pytest_generate_tests for the suites: parametrize by the test's ``cases`` marker."""
    marker = metafunc.definition.get_closest_marker("cases")
    if marker is None:
        if "model_case" in metafunc.fixturenames:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} asks for model_case but names no "
                                    f"parametrizer: mark it @pytest.mark.cases(NAME), NAME one of "
                                    f"{', '.join(PARAMETRIZERS)}")
        return
    name = marker.args[0] if marker.args else ""
    if name not in PARAMETRIZERS:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: no parametrizer {name!r}; "
                                f"known: {', '.join(PARAMETRIZERS)}")
    p = PARAMETRIZERS[name]
    missing = [a for a in p.argnames if a not in metafunc.fixturenames]
    if missing:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: parametrizer {name!r} fills "
                                f"{', '.join(p.argnames)}; the test does not take {', '.join(missing)}")
    metafunc.parametrize(p.argnames, p.make(model_cases(metafunc.config), metafunc.config))
