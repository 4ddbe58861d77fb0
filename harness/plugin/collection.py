"""Turning a model selection into test items: the run's model cases (selection plus cached
facts), the --compat-dir artifact sets, one check-family marker per test enforced, the
smoke scopes applied, and known issues attached as strict xfails. The parameters of each
suite test come from its named parametrizer (harness.plugin.parametrize)."""
from __future__ import annotations

import functools
import re
import sys
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
import timm

from harness.checks import layers
from harness.checks.affected import affected_for_suites
from harness.checks.compat import CompatLayoutError, discover, registry_files
from harness.checks.layers import LayerCase
from harness.models import build
from harness.models.capabilities import Capabilities, capabilities_for
from harness.models.facts import ModelFacts, facts_for
from harness.models.selection import AFFECTED, SelectionError, expand_tokens, removed_smoke_models, resolve_models, smoke_only
from harness.plugin.options import HarnessOptions
from harness.registry import intended_changes, known_issues
from harness.registry.check_families import CHECK_FAMILIES
from harness.registry.known_issues import KnownIssue
from harness.registry.model_families import ModelFamily, family_for
from harness.registry.scopes import describe_slow_scope, slow_reason
from harness.registry.smoke import in_smoke_scope
from harness.reports.summary import SELECTION_NOTES

KNOWN_ISSUE = pytest.StashKey[KnownIssue]()
_NAMES = pytest.StashKey[list]()
_SMOKE_ONLY = pytest.StashKey[set]()
_CASES = pytest.StashKey[list]()
_COMPAT = pytest.StashKey[list]()
_CAPS = pytest.StashKey[dict]()

# The check families whose cases depend on discovered capabilities.
CAPABILITY_FAMILIES = ("create", "pretrained", "reset_classifier")


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
            _add_note(config, f"--models {AFFECTED}{spec}: {summary}")
        return found[spec]
    return resolve


def _add_note(config: pytest.Config, note: str | None) -> None:
    """Add a line on how the selection came about to the run summary, which reads them at
    the end under a 'selection: N models' header (written once the names are known; note
    None only writes the header where notes came before the names)."""
    notes = config.stash.setdefault(SELECTION_NOTES, [])
    if note is not None:
        notes.append(note)
    if _NAMES in config.stash and notes and not notes[0].startswith("selection: "):
        models = HarnessOptions.from_config(config).models
        notes.insert(0, f"selection: {len(config.stash[_NAMES])} models (--models {models})")


def _deselect(config: pytest.Config, items: list[pytest.Item], dropped: list[pytest.Item]) -> None:
    """Deselect ``dropped``: reported as deselected, so an expected-status file does not
    count them as vanished."""
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [i for i in items if id(i) not in gone]


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
        _add_note(config, None)
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


def placeholder_case(name: str, why: str) -> ModelCase:
    """A case for a name with nothing to build (a removed model, a smoke-scope pattern):
    structural, no facts beyond ``why``."""
    return ModelCase(name, ModelFacts(name, "", None, (), meta_error=why), family_for(name, ""), False)


def removed_cases(config: pytest.Config) -> list[ModelCase]:
    """Smoke-set models the importable timm no longer registers (``--models smoke``): each
    gets a case whose only test fails with "model removed"."""
    opts = HarnessOptions.from_config(config)
    return [placeholder_case(name, "not registered") for name in removed_smoke_models(opts.models, opts.exclude)]


def selects_any(config: pytest.Config, families: tuple[str, ...]) -> bool:
    """Whether ``-m`` can select a test of any of these check families (True without -m),
    so a run of other families never pays for discovering what it does not use."""
    expr = (config.option.markexpr or "").strip()
    if not expr:
        return True
    try:
        from _pytest.mark.expression import Expression

        compiled = Expression.compile(expr)
    except Exception:  # noqa: BLE001 - pytest reports a bad -m itself; assume selected
        return True
    return any(_evaluate(compiled, {f}) for f in families)


def _evaluate(compiled, markers: set[str]) -> bool:
    def matcher(name: str, **kwargs) -> bool:  # pytest >= 8.3 passes keyword arguments for mark(kw=...)
        return name in markers and not kwargs
    return bool(compiled.evaluate(matcher))


@functools.lru_cache(maxsize=None)
def _capabilities_uncached(model_name: str) -> Capabilities:
    return capabilities_for(model_name, None, None)


def case_capabilities(config: pytest.Config, case: ModelCase) -> Capabilities:
    """The model's discovered capabilities (models.capabilities), cached in config.cache
    like the facts and gathered once per process; empty where no capability family is
    selected by -m (its cases are deselected anyway). Without a config (the known-issue
    registry test builds ids outside a pytest session) discovered afresh, uncached."""
    if config is None:
        return _capabilities_uncached(case.model)
    store = config.stash.setdefault(_CAPS, {})
    if case.model not in store:
        if not selects_any(config, CAPABILITY_FAMILIES):
            return Capabilities()
        cache = getattr(config, "cache", None)
        store[case.model] = capabilities_for(case.model, cache and cache.get, cache and cache.set)
    return store[case.model]


def gather_capabilities(config: pytest.Config) -> None:
    """On the xdist controller: discover every selected model's capabilities once, so the
    workers read them from the cache instead of each discovering them."""
    for case in model_cases(config):
        case_capabilities(config, case)


def layer_cases(config: pytest.Config) -> list[LayerCase]:
    """The layers family's cases (checks.layers.discover): the layers do not depend on the
    models, so they run with ``--models smoke`` or ``all``, or where ``-m`` names the layers
    family (``-m layers --models resnet18``); a run over chosen models does not repeat them.
    A ``-m`` that deselects the family collects none (no discovery cost)."""
    expr = (config.option.markexpr or "").strip()
    if expr and not selects_any(config, ("layers",)):
        return []
    named = bool(re.search(r"\blayers\b", expr))
    if not named and HarnessOptions.from_config(config).models.strip() not in ("smoke", "all"):
        return []
    return layers.discover()[0]


PACKAGE = "timm"  # the pseudo-model of package-level tests (import surface, registry): 'timm-<variant>'


def package_case() -> ModelCase:
    """The case of a package-level test: its id starts with 'timm', so reports put it on a
    'timm' row and known issues match it with models='timm'."""
    return ModelCase(PACKAGE, ModelFacts(PACKAGE, PACKAGE, None, (3, 224, 224)), family_for(PACKAGE, PACKAGE), False)


def registry_baselines(config: pytest.Config) -> list[tuple[str, Path]]:
    """(version, registry.json) of each baseline release in --compat-dir ([] without)."""
    opts = HarnessOptions.from_config(config)
    if opts.compat_dir is None:
        return []
    compat_sets(config)  # vets the layout (a usage error otherwise)
    return registry_files(opts.compat_dir, build.timm_version())


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
        if not chosen and not registry_files(opts.compat_dir, build.timm_version()):
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
        if params and "layer_case" in params:
            return not isinstance(params["layer_case"], LayerCase)
        return bool(params) and "model_case" in params and not isinstance(params["model_case"], ModelCase)

    _deselect(config, items, [i for i in items if placeholder(i)])


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

    _deselect(config, items, [i for i in items if outside(i)])


def keep_run_scope(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--slow``, deselect the slow scope (registry.scopes); the sweep and the nightly
    pass ``--slow``. A run that names what it wants keeps it: ``-k``, or ``-m`` naming the
    family (``-m benchmark``). Deselected, so an expected-status file does not count the cases
    as vanished; the run summary names the scope and the count dropped; kept slow cases are
    marked in the results."""
    def slow(item: pytest.Item) -> str:
        spec = getattr(item, "callspec", None)
        if spec is None or not isinstance(spec.params.get("model_case"), ModelCase):
            return ""
        return next((r for m in item.iter_markers() if m.name in CHECK_FAMILIES
                     for r in [slow_reason(m.name, spec.id, spec.params)] if r), "")

    wanted = config.getoption("--slow", None)
    if wanted is None:  # not the suites' options
        return
    keep_all = wanted or bool(config.getoption("keyword", ""))  # -k names the cases it wants
    named = named_families(config.getoption("markexpr", "") or "")
    dropped = []
    for item in items:
        reason = slow(item)
        if not reason:
            continue
        if keep_all or named & {m.name for m in item.iter_markers()}:
            item.user_properties.append(("harness_slow", reason))  # results.json marks it
        else:
            dropped.append(item)
    # named from what was dropped and -m would have run: a run whose -m or -k kept the cases,
    # or whose -m selects none of them, says nothing
    family_of = {id(i): next(m.name for m in i.iter_markers() if m.name in CHECK_FAMILIES) for i in dropped}
    selected = {f: selects_any(config, (f,)) for f in set(family_of.values())}  # -m compiled once a family
    wanted_by_m = sum(1 for i in dropped if selected[family_of[id(i)]])
    if wanted_by_m:
        _add_note(config, describe_slow_scope(wanted_by_m))
    _deselect(config, items, dropped)


def named_families(markexpr: str) -> set[str]:
    """The check families a ``-m`` expression names, not negated: ``-m benchmark`` or
    ``-m "onnx or golden"`` asks for the whole family, its slow cases included."""
    words = re.findall(r"[A-Za-z_]\w*", markexpr)
    return {w for i, w in enumerate(words) if w in CHECK_FAMILIES and (i == 0 or words[i - 1] != "not")}


def apply_markers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Enforce one check-family marker per test; attach known issues as strict xfails."""
    opts = HarnessOptions.from_config(config)
    version = build.timm_version()
    for item in items:
        families = {m.name for m in item.iter_markers() if m.name in CHECK_FAMILIES}
        if len(families) != 1:
            raise pytest.UsageError(f"{item.nodeid} carries check markers {sorted(families)}; "
                                    f"every suite test needs exactly one of {CHECK_FAMILIES}")
        params = getattr(item, "callspec", None) and item.callspec.params
        case = params and (params.get("model_case") or params.get("layer_case"))
        if case is None or opts.ignore_known_issues:
            continue
        subject = case.model if isinstance(case, ModelCase) else case.name  # a layer stands where a model does
        issue = known_issues.matching_issue(subject, families.pop(), item.callspec.id, version,
                                            test_name=getattr(item, "originalname", ""))
        if issue is not None:
            item.stash[KNOWN_ISSUE] = issue
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"known issue (timm {issue.timm or 'any'}): "
                                                                  f"{issue.reason}"))


def apply_intended_changes(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Differential tests (test_compat_outputs) of a model a release changed on purpose
    (registry.intended_changes) become strict xfails whose message must match, like known
    issues; --ignore-known-issues leaves them failing."""
    if HarnessOptions.from_config(config).ignore_known_issues:
        return
    version = build.timm_version()
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params
        artifact = params and params.get("compat_artifact")
        if artifact is None or getattr(item, "originalname", "") != "test_compat_outputs" or KNOWN_ISSUE in item.stash:
            continue
        change = intended_changes.matching_change(artifact.model, version, artifact.version)
        if change is not None:
            item.stash[KNOWN_ISSUE] = KnownIssue(change.models, "compat", f">={change.release}", change.reason,
                                                 match=change.match)
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"intended change (timm {change.release}): "
                                                                  f"{change.reason}"))


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
