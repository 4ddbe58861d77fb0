"""Turning a model selection into test items: the run's model cases (selection plus cached
facts), the --compat-dir artifact sets, one check-family marker per test enforced, the
smoke scopes applied, and known issues attached as strict xfails. The parameters of each
suite test come from its named parametrizer (harness.plugin.parametrize)."""
from __future__ import annotations

import re
import sys
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass

import pytest
import timm

from harness.checks.affected import affected_for_suites
from harness.checks.compat import CompatLayoutError, discover
from harness.models import build
from harness.models.facts import ModelFacts, facts_for
from harness.models.selection import AFFECTED, SelectionError, expand_tokens, resolve_models, smoke_only
from harness.plugin.options import HarnessOptions
from harness.registry import known_issues
from harness.registry.check_families import CHECK_FAMILIES
from harness.registry.known_issues import KnownIssue
from harness.registry.model_families import ModelFamily, family_for
from harness.registry.smoke import in_smoke_scope

KNOWN_ISSUE = pytest.StashKey[KnownIssue]()
_NAMES = pytest.StashKey[list]()
_SMOKE_ONLY = pytest.StashKey[set]()
SELECTION_NOTES = pytest.StashKey[list]()  # lines for the run summary: how the selection came about
_CASES = pytest.StashKey[list]()
_COMPAT = pytest.StashKey[list]()


@dataclass(frozen=True)
class ModelCase:
    model: str
    facts: ModelFacts
    family: ModelFamily
    numeric: bool  # False: over --max-params, structural checks on the meta device only

    def __repr__(self) -> str:  # keeps pytest's verbose output readable
        return self.model


def _affected_resolver(config: pytest.Config, exclude: str):
    """``affected:SPEC`` -> model names, computed once (harness.checks.affected caches it per
    pair of timm trees, so xdist workers read what the controller found); progress and the
    summary are printed with output capture suspended, the summary line kept for the run
    summary."""
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    found: dict[str, list[str]] = {}

    def resolve(spec: str) -> list[str]:
        if spec not in found:
            capman = config.pluginmanager.getplugin("capturemanager")
            with capman.global_and_fixture_disabled() if capman else _nullcontext():
                found[spec], summary = affected_for_suites(spec, exclude, say)
            config.stash.setdefault(SELECTION_NOTES, []).append(f"--models {AFFECTED}{spec}: {summary}")
        return found[spec]
    return resolve


def selected_names(config: pytest.Config) -> list[str]:
    """The run's model names (cheap: no model is built). A bad selection is a usage error."""
    if _NAMES not in config.stash:
        opts = HarnessOptions.from_config(config)
        try:
            registry = sorted(timm.list_models())
            resolver = _affected_resolver(config, opts.exclude)
            config.stash[_NAMES] = resolve_models(opts.models, opts.exclude, registry, resolver)
            config.stash[_SMOKE_ONLY] = smoke_only(expand_tokens(opts.models, registry, resolver))
        except SelectionError as exc:
            raise pytest.UsageError(str(exc)) from None
        notes = config.stash.get(SELECTION_NOTES, [])
        if notes:
            notes = [f"selection: {len(config.stash[_NAMES])} models (--models {opts.models})", *notes]
            config.stash[SELECTION_NOTES] = notes
            summary = config.pluginmanager.get_plugin("harness-summary")
            if summary is not None:
                summary.notes = notes
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


def compat_sets(config: pytest.Config) -> list:
    """The --compat-dir artifact sets written by other releases for the selected models
    ([] without --compat-dir). Called at configure time, so a bad directory is a usage
    error before collection; asking for -m compat without --compat-dir is one too."""
    if _COMPAT not in config.stash:
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
    """Deselect the cases of costly check families that fall outside their curated subset
    (registry.smoke.SMOKE_SCOPES) for models only the 'smoke' token selected; a model
    also selected otherwise (a pattern, 'all', 'affected:SPEC') keeps every case."""
    scoped = config.stash.get(_SMOKE_ONLY, set())
    if not scoped:
        return

    def outside(item: pytest.Item) -> bool:
        spec = getattr(item, "callspec", None)
        case = spec.params.get("model_case") if spec is not None else None
        return (isinstance(case, ModelCase) and case.model in scoped
                and any(not in_smoke_scope(m.name, spec.id) for m in item.iter_markers() if m.name in CHECK_FAMILIES))

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
        issue = known_issues.matching_issue(case.model, families.pop(), item.callspec.id, version,
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
