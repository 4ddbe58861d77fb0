"""Turning a model selection into parametrized tests: one pytest.param per model (and
per variant), ids that start with the model name, the check-family marker on each
param, and known issues attached as strict xfails."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import build
from harness.facts import ModelFacts, facts_for
from harness.known_issues import KnownIssue, matching_issue
from harness.model_table import FamilyInfo, family_for
from harness.pytest_plugin import CHECK_FAMILIES, HarnessOptions
from harness.selection import SelectionError, in_smoke_scope, resolve_models
from harness.variants import LOAD_MODES, head_variants

KNOWN_ISSUE = pytest.StashKey[KnownIssue]()
_NAMES = pytest.StashKey[list]()
_CASES = pytest.StashKey[list]()
_COMPAT = pytest.StashKey[list]()


@dataclass(frozen=True)
class ModelCase:
    model: str
    facts: ModelFacts
    family: FamilyInfo
    numeric: bool  # False: over --max-params, structural checks on the meta device only

    def __repr__(self) -> str:  # keeps pytest's verbose output readable
        return self.model


def selected_names(config: pytest.Config) -> list[str]:
    """The run's model names (cheap: no model is built). A bad selection is a usage error."""
    if _NAMES not in config.stash:
        opts = HarnessOptions.from_config(config)
        try:
            config.stash[_NAMES] = resolve_models(opts.models, opts.exclude)
        except SelectionError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_NAMES]


def model_cases(config: pytest.Config) -> list[ModelCase]:
    """The run's models with their meta-device facts, gathered once per process."""
    if _CASES not in config.stash:
        opts = HarnessOptions.from_config(config)
        cases = []
        for name in selected_names(config):
            cache = getattr(config, "cache", None)
            facts = facts_for(name, cache and cache.get, cache and cache.set)
            numeric = facts.param_count is not None and facts.param_count <= opts.max_params
            cases.append(ModelCase(name, facts, family_for(name, facts.module), numeric))
        config.stash[_CASES] = cases
    return config.stash[_CASES]


def _create_params(cases: list[ModelCase]) -> list:
    return [pytest.param(c, mode, head, id=f"{c.model}-{mode.id}-{head.id}",
                         marks=getattr(pytest.mark, mode.check))
            for c in cases for mode in LOAD_MODES for head in head_variants(c.family)]


def _reset_params(cases: list[ModelCase]) -> list:
    return [pytest.param(c, (cid, dict(kwargs)), id=f"{c.model}-{cid}")
            for c in cases for cid, kwargs in {"default": {}, **c.family.reset_configs}.items()]


def _model_params(cases: list[ModelCase]) -> list:
    return [pytest.param(c, id=c.model) for c in cases]


def _reparam_params(cases: list[ModelCase]) -> list:
    """Only reparameterizable models: a model with nothing to fuse is not collected."""
    params = []
    for case in cases:
        if case.facts.reparam_sites:
            params.append(pytest.param(case, case.facts.reparam_sites, id=case.model))
    return params


def _onnx_params(cases: list[ModelCase]) -> list:
    """Each model x exporter, plus the same after reparameterize_model for models with
    reparam sites: ids '<model>-<exporter>' and '<model>-<exporter>-reparam'."""
    from harness.onnx_export import EXPORTERS

    return [pytest.param(c, exporter, rep, id=f"{c.model}-{exporter}{'-reparam' if rep else ''}")
            for c in cases for rep in ((False, True) if c.facts.reparam_sites else (False,))
            for exporter in EXPORTERS]


def _patch_size_params(cases: list[ModelCase]) -> list:
    """One param per (pretrained tag, its checkpoint family, geometry) of patch-embedding
    models (probed on the meta device); other models are not collected."""
    from harness.patch_size import patch_cases

    return [pytest.param(c, pc, id=repr(pc)) for c in cases for pc in patch_cases(c.model)]


def compat_sets(config: pytest.Config) -> list:
    """The --compat-dir artifact sets written by other releases for the selected models
    ([] without --compat-dir). Called at configure time, so a bad directory is a usage
    error before collection; asking for -m compat without --compat-dir is one too."""
    if _COMPAT not in config.stash:
        from harness.compat import CompatLayoutError, discover

        opts = HarnessOptions.from_config(config)
        if opts.compat_dir is None:
            if (config.option.markexpr or "").strip() == "compat":
                raise pytest.UsageError("-m compat needs --compat-dir DIR: artifacts written by "
                                        "`python -m harness export DIR` under another timm release")
            config.stash[_COMPAT] = []
            return []
        try:
            sets = discover(opts.compat_dir, build.timm_version())
        except CompatLayoutError as exc:
            raise pytest.UsageError(str(exc)) from None
        names = set(selected_names(config))
        chosen = [s for s in sets if s.model in names]
        if not chosen:
            raise pytest.UsageError(f"--compat-dir {opts.compat_dir} holds artifacts for "
                                    f"{', '.join(sorted({s.model for s in sets}))}; none is in --models {opts.models!r}")
        config.stash[_COMPAT] = chosen
    return config.stash[_COMPAT]


def _compat_params(cases: list[ModelCase], config: pytest.Config) -> list:
    """One param per (model, baseline release): ids are '<model>-<baseline version>'."""
    by_model = {c.model: c for c in cases}
    return [pytest.param(by_model[s.model], s, id=f"{s.model}-{s.version}")
            for s in compat_sets(config) if s.model in by_model]


_compat_params.needs_config = True  # generate_tests passes the config as well


# argnames a suite test asks for -> how their parameters are generated from the run's
# cases (and the config, for generators marked needs_config); first match wins
PARAMETRIZERS: dict[tuple[str, ...], Callable[[list[ModelCase]], list]] = {
    ("model_case", "compat_artifact"): _compat_params,
    ("model_case", "load_mode", "head_variant"): _create_params,
    ("model_case", "reset_config"): _reset_params,
    ("model_case", "reparam_sites"): _reparam_params,
    ("model_case", "exporter", "reparameterized"): _onnx_params,
    ("model_case", "patch_case"): _patch_size_params,
    ("model_case",): _model_params,
}


def generate_tests(metafunc: pytest.Metafunc) -> None:
    for argnames, make in PARAMETRIZERS.items():
        if set(argnames) <= set(metafunc.fixturenames):
            cases = model_cases(metafunc.config)
            params = make(cases, metafunc.config) if getattr(make, "needs_config", False) else make(cases)
            metafunc.parametrize(argnames, params)
            return


def drop_empty_parametrizations(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A suite whose generator yields no case for this selection (e.g. the reparam suite
    over models with nothing to fuse) collects pytest's empty-parameter-set placeholder;
    deselect it, so a non-applicable model adds no test at all."""
    def placeholder(item: pytest.Item) -> bool:
        params = getattr(item, "callspec", None) and item.callspec.params
        return bool(params) and "model_case" in params and not isinstance(params["model_case"], ModelCase)

    empty = [i for i in items if placeholder(i)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]


def keep_smoke_scope(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--models smoke``, deselect the cases of costly check families that fall
    outside their curated subset (selection.SMOKE_SCOPES); other selections keep all."""
    if HarnessOptions.from_config(config).models.strip() != "smoke":
        return
    def outside(item: pytest.Item) -> bool:
        spec = getattr(item, "callspec", None)
        return spec is not None and any(not in_smoke_scope(m.name, spec.id) for m in item.iter_markers()
                                        if m.name in CHECK_FAMILIES)

    dropped = [i for i in items if outside(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


def apply_markers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Enforce one check-family marker per test; attach known issues as strict xfails."""
    opts = HarnessOptions.from_config(config)
    version = build.timm_version()
    for item in items:
        families = {m.name for m in item.iter_markers() if m.name in CHECK_FAMILIES}
        if len(families) != 1:
            raise pytest.UsageError(f"{item.nodeid} carries check markers {sorted(families)}; "
                                    f"every suite test needs exactly one of {CHECK_FAMILIES}")
        case = getattr(item, "callspec", None) and item.callspec.params.get("model_case")
        if case is None or opts.ignore_known_issues:
            continue
        issue = matching_issue(case.model, families.pop(), item.callspec.id, version,
                               test_name=getattr(item, "originalname", ""))
        if issue is not None:
            item.stash[KNOWN_ISSUE] = issue
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"known issue (timm {issue.timm or 'any'}): "
                                                                  f"{issue.reason}"))


def enforce_known_issue_match(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    """A known issue covers only the failure it describes: a test xfailed for a message
    that does not match the entry's regex is reported as a failure."""
    issue = item.stash.get(KNOWN_ISSUE, None)
    if issue is None or not issue.match or call.excinfo is None or not hasattr(report, "wasxfail"):
        return
    message = str(call.excinfo.value)
    if not re.search(issue.match, message):
        del report.wasxfail
        report.outcome = "failed"
        report.longrepr = (f"failed for a reason the known issue does not cover.\n"
                           f"E   known issue expects /{issue.match}/ ({issue.reason})\n"
                           f"E   got {call.excinfo.typename}: {message}")
