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

from harness.checks.constructor_kwargs import KwargCase
from harness.checks.onnx import EXPORTERS
from harness.checks.patch_size import patch_cases
from harness.models.variants import LOAD_MODES, head_variants
from harness.plugin.collection import ModelCase, case_capabilities, compat_sets, model_cases

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
    """Load mode x head variant (the discovered pools, head kwargs and in_chans included),
    marked create (scratch) or pretrained: '<model>-<mode>-<head>'."""
    return [pytest.param(c, mode, head, id=f"{c.model}-{mode.id}-{head.id}",
                         marks=getattr(pytest.mark, mode.check))
            for c in cases for head in head_variants(c.family, case_capabilities(config, c))
            for mode in LOAD_MODES if head.applies_to(mode)]


def reset_configs(case: ModelCase, config: pytest.Config) -> dict[str, dict]:
    """config id -> construction kwargs: the default, each discovered pool, the family's
    extra configs, and each of them again after num_classes=0 construction."""
    caps = case_capabilities(config, case)
    pools = {} if case.family.fixed_pool else {f"global_pool_{p}": {"global_pool": p} for p in caps.pools}
    base = {"default": {}, **pools, **{k: dict(v) for k, v in case.family.reset_configs.items()}}
    headless = {("num_classes_0" if cid == "default" else f"num_classes_0-{cid}"): {**kw, "num_classes": 0}
                for cid, kw in base.items()}
    return {**base, **headless}


@parametrizer("reset_classifier", "reset_config")
def _reset(cases: list[ModelCase], config: pytest.Config) -> list:
    """The default construction, every discovered pool, the family's reset configs, and
    the same built with num_classes=0: '<model>-<config>' (e.g. 'resnet18-global_pool_max',
    'resnet18-num_classes_0-global_pool_max')."""
    return [pytest.param(c, (cid, kwargs), id=f"{c.model}-{cid}")
            for c in cases for cid, kwargs in reset_configs(c, config).items()]


@parametrizer("entry_kwargs")
def _entry_kwargs(cases: list[ModelCase], config: pytest.Config) -> list:
    """Models whose entry point passes kwargs to build_model_with_cfg: '<model>-entry_kwargs'."""
    return [pytest.param(c, id=f"{c.model}-entry_kwargs") for c in cases
            if case_capabilities(config, c).entry_kwargs]


@parametrizer("constructor_kwargs", "kwarg_case")
def _constructor_kwargs(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per discovered constructor kwarg value: '<model>-kwarg-<name>_<value>'."""
    return [pytest.param(c, KwargCase(cid, dict(kwargs), next(iter(kwargs))), id=f"{c.model}-kwarg-{cid}")
            for c in cases for cid, kwargs in case_capabilities(config, c).ctor_kwargs.items()]


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
            for s in compat_sets(config) if s.model in by_model and s.kind == "full"]


@parametrizer("compat_outputs", "compat_artifact")
def _compat_outputs(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per (model, baseline release) whose artifacts hold reference outputs
    (checks.differential): '<model>-<baseline version>'."""
    by_model = {c.model: c for c in cases}
    return [pytest.param(by_model[s.model], s, id=f"{s.model}-{s.version}")
            for s in compat_sets(config) if s.model in by_model and s.reference]


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
