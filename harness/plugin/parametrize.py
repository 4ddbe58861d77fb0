"""The named parametrizers: how each suite test's parameters are generated from the run's
model cases. A suite names its parametrizer explicitly with ``@pytest.mark.cases(NAME)``
(or ``pytestmark``); the parametrizer declares the argnames it fills, the first always
``model_case``, and every parameter id starts with the model name (the contract's
test-id grammar, registry.test_ids).

    @parametrizer("reparam")
    def _reparam(cases, config): ...  # -> list of pytest.param(model_case, ..., id=...)
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable

import pytest

from harness.checks import features, geometry
from harness.checks.constructor_kwargs import KwargCase
from harness.checks.meta_init import applicable as meta_init_variants
from harness.checks.onnx import EXPORTERS
from harness.checks.patch_size import patch_cases
from harness.checks.surface import IMPORT_CHECKS
from harness.checks.transforms import applicable as applicable_transforms
from harness.models.discovery import REPARAM_METHODS, patch_discovery
from harness.models.variants import LOAD_MODES, further_pools, head_variants, reset_configs
from harness.plugin.collection import (
    ModelCase,
    case_capabilities,
    compat_sets,
    model_cases,
    package_case,
    placeholder_case,
    registry_baselines,
    removed_cases,
)
from harness.plugin.options import HarnessOptions
from harness.registry import smoke
from harness.registry.test_ids import model_of

Make = Callable[[list[ModelCase], pytest.Config], list]


Why = Callable[[ModelCase, pytest.Config], str]


@dataclass(frozen=True)
class Parametrizer:
    argnames: tuple[str, ...]
    make: Make
    why_none: Why | None = None  # why a model gets no case (for the summary's "not applicable")


PARAMETRIZERS: dict[str, Parametrizer] = {}


def parametrizer(name: str, *argnames: str, why_none: Why | None = None) -> Callable[[Make], Make]:
    """Register ``make(cases, config) -> [pytest.param(model_case, *rest, id=...)]`` under
    ``name``, filling ``model_case`` and ``argnames``; ``why_none(case, config)`` says why a
    model gets no case from it."""
    def register(make: Make) -> Make:
        if name in PARAMETRIZERS:
            raise ValueError(f"parametrizer {name!r} is registered twice")
        PARAMETRIZERS[name] = Parametrizer(("model_case", *argnames), make, why_none)
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


@parametrizer("reset_classifier", "reset_config")
def _reset(cases: list[ModelCase], config: pytest.Config) -> list:
    """The default construction, every discovered pool, the family's reset configs, and
    the same built with num_classes=0: '<model>-<config>' (e.g. 'resnet18-global_pool_max',
    'resnet18-num_classes_0-global_pool_max'). The param is (config id, create kwargs, whether
    the config's pool is a further one: the slow scope)."""
    out = []
    for c in cases:
        caps = case_capabilities(config, c)
        further = further_pools(c.family, caps)
        out += [pytest.param(c, (cid, kwargs, kwargs.get("global_pool") in further), id=f"{c.model}-{cid}")
                for cid, kwargs in reset_configs(c.family, caps).items()]
    return out


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


def _no_reparam_sites(case: ModelCase, config: pytest.Config) -> str:
    return (f"no module has {' / '.join(REPARAM_METHODS)}: reparameterize_model has nothing to change"
            if case.facts.param_count is not None else f"not buildable on the meta device ({case.facts.meta_error})")


@parametrizer("reparam", why_none=_no_reparam_sites)
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


def _no_patch_cases(case: ModelCase, config: pytest.Config) -> str:
    return patch_discovery(case.model).reason or "no pretrained tag"


@parametrizer("patch_size", "patch_case", why_none=_no_patch_cases)
def _patch_size(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per (pretrained tag, its checkpoint family, geometry) of patch-embedding
    models (probed on the meta device): '<model>.<tag>-<family>-<geometry>'."""
    return [pytest.param(c, pc, id=repr(pc)) for c in cases for pc in patch_cases(c.model)]


def _no_artifact(case: ModelCase, config: pytest.Config) -> str:
    return (f"--compat-dir holds no artifact of {case.model} from another release (its export failed, or the "
            f"baselines predate it)")


@parametrizer("compat", "compat_artifact", why_none=_no_artifact)
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


@parametrizer("removed")
def _removed(cases: list[ModelCase], config: pytest.Config) -> list:
    """Smoke-set models the candidate no longer registers (collection.removed_cases): '<model>'."""
    return [pytest.param(c, id=c.model) for c in removed_cases(config)]


# The parametrizers whose ids a check family's SMOKE_SCOPES patterns select from, where they
# are not the one parametrizer named as the family (create's matrix also makes the pretrained
# cells; the entry-point and constructor kwargs tests are marked create).
SCOPED_PARAMETRIZERS: dict[str, tuple[str, ...]] = {
    "create": ("create", "entry_kwargs", "constructor_kwargs"),
    "pretrained": ("create",),
    "features": ("features_out_indices", "features_intermediates", "features_wrappers", "features_models",
                 "features_prune", "features_script"),
}


def smoke_scope_misses(cases: list[ModelCase], config: pytest.Config) -> list[tuple[str, str]]:
    """(check family, pattern) for each SMOKE_SCOPES pattern that selects none of the ids
    the family's parametrizer (named as the family) generates over these cases."""
    misses = []
    for family, patterns in smoke.SMOKE_SCOPES.items():
        ids = [p.id for name in SCOPED_PARAMETRIZERS.get(family, (family,))
               for p in PARAMETRIZERS[name].make(cases, config)]
        selects = {pat: bool(fnmatch.filter(ids, pat)) for pat in patterns}
        # smoke._models gives a model both '<model>' and '<model>-*': one of the two is enough
        misses += [(family, pat) for pat in patterns
                   if not selects[pat] and not selects.get(f"{pat}-*") and not selects.get(pat.removesuffix("-*"))]
    return misses


@parametrizer("smoke_scopes", "scope")
def _smoke_scopes(cases: list[ModelCase], config: pytest.Config) -> list:
    """Under ``--models smoke``, each SMOKE_SCOPES pattern that selects nothing: '<pattern>'
    (its model first), marked with the scope's check family."""
    if config.getoption("--models").strip() != "smoke":
        return []
    by_model = {c.model: c for c in cases}
    params = []
    for family, pat in smoke_scope_misses(cases, config):
        model = model_of(f"[{pat}]")
        case = by_model.get(model) or placeholder_case(model, f"the smoke scope pattern {pat!r}")
        params.append(pytest.param(case, (family, pat), id=pat, marks=getattr(pytest.mark, family)))
    return params


def not_applicable(config: pytest.Config, seen: set[tuple[str, str]],
                   deselected: set[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(model, check family, why) for every model of the run that a family present in the
    run collected no test for (deselected pairs excluded): a family that collects nothing for
    a model is listed, never silent. ``why`` comes from the family's parametrizer."""
    families = sorted({f for _, f in seen})
    out = []
    for case in model_cases(config):
        for family in families:
            if (case.model, family) in seen or (case.model, family) in deselected:
                continue
            p = PARAMETRIZERS.get(family)
            why = p.why_none(case, config) if p is not None and p.why_none else "its suite generated no case"
            out.append((case.model, family, why))
    return out


def _with_features(cases: list[ModelCase]) -> list[ModelCase]:
    """Models that declare feature_info (discovered: harness.models.feature_support)."""
    return [c for c in cases if c.facts.features is not None]


@parametrizer("features_out_indices", "feature_case")
def _features_out_indices(cases: list[ModelCase], config: pytest.Config) -> list:
    """features_only=True at each out_indices case: '<model>-out_indices_<default|subset|negative|invalid>'."""
    return [pytest.param(c, case, id=f"{c.model}-out_indices_{case}")
            for c in _with_features(cases) for case in features.out_indices_cases(c.facts.features)]


@parametrizer("features_intermediates", "feature_case")
def _features_intermediates(cases: list[ModelCase], config: pytest.Config) -> list:
    """forward_intermediates cases of models that have it: '<model>-<all|norm|stop_early|output_fmt_F>'."""
    return [pytest.param(c, case, id=f"{c.model}-{case}")
            for c in _with_features(cases) for case in features.intermediates_cases(c.facts.features)]


@parametrizer("features_wrappers", "feature_case")
def _features_wrappers(cases: list[ModelCase], config: pytest.Config) -> list:
    """Each other feature wrapper that applies: '<model>-feature_cls_<hook|fx|getter>'."""
    return [pytest.param(c, w, id=f"{c.model}-feature_cls_{w}")
            for c in _with_features(cases) for w in c.facts.features.wrappers()]


@parametrizer("features_models")
def _features_models(cases: list[ModelCase], config: pytest.Config) -> list:
    """One test per model with feature_info: '<model>'."""
    return [pytest.param(c, id=c.model) for c in _with_features(cases)]


@parametrizer("features_prune")
def _features_prune(cases: list[ModelCase], config: pytest.Config) -> list:
    """Models with prune_intermediate_layers: '<model>'."""
    return [pytest.param(c, id=c.model) for c in _with_features(cases) if c.facts.features.prune]


@parametrizer("features_script")
def _features_script(cases: list[ModelCase], config: pytest.Config) -> list:
    """Features models timm supports scripting: '<model>'."""
    return [pytest.param(c, id=c.model) for c in _with_features(cases)
            if features.script_supported(c.model, c.facts.features)]


@parametrizer("geometry", "geometry_case")
def _geometry(cases: list[ModelCase], config: pytest.Config) -> list:
    """The input-size cases a model declares (harness.models.input_geometry): '<model>-<case>_<H>x<W>'."""
    return [pytest.param(c, case, id=f"{c.model}-{case}")
            for c in cases if c.facts.geometry is not None for case in geometry.geometry_cases(c.facts.geometry)]


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
         if s.model in by_model and s.kind == "full"]


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
