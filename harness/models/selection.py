"""Which models a run covers: fnmatch patterns over timm's registry, 'all', the curated
'smoke' set (registry.smoke), a named sample ('sample:modules', models.sample), or
'affected:SPEC' (the models a change since the timm tree SPEC could have affected; resolved
by a function the caller passes in, see harness.checks.affected); minus --exclude. A pattern
that matches nothing is a usage error, never an empty green run. timm is imported only where
the registry is read, so the `affected` command can select over registries it read from
other processes."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

from harness.registry import smoke

SAMPLE = "sample:"  # --models sample:NAME (harness.models.sample)

# Models above this many parameters get only the structural checks, on the meta device.
DEFAULT_MAX_PARAMS = 100_000_000
AFFECTED = "affected:"

Affected = Callable[[str], list[str]]  # SPEC -> the affected model names (--models affected:SPEC)


class SelectionError(ValueError):
    """A --models/--exclude value that cannot be honoured; the message says why."""


def _timm_version() -> str:
    import timm
    return timm.__version__


def _expand(token: str, registry: list[str], affected: Affected | None) -> list[str]:
    if token == "all":
        return list(registry)
    if token.startswith(SAMPLE):
        from harness.models import sample  # reads timm's registry: imported where used
        try:
            return sample.sample(token[len(sample.PREFIX):], registry)
        except ValueError as exc:
            raise SelectionError(f"--models {token!r}: {exc}") from None
    if token == "smoke":
        return [m for m in smoke.SMOKE_MODELS if m in set(registry)]
    if token.startswith(AFFECTED):
        spec = token[len(AFFECTED):].strip()
        if not spec:
            raise SelectionError("--models affected:SPEC needs a SPEC: a timm release, 'previous' or a folder "
                                 "holding timm/")
        if affected is None:
            raise SelectionError(f"--models {token!r}: affected:SPEC is resolved by the suites and by "
                                 f"`python -m harness affected`, not here")
        known = set(registry)
        return [m for m in affected(spec) if m in known]
    matched = fnmatch.filter(registry, token)
    if not matched:
        close = difflib.get_close_matches(token.replace("*", ""), registry, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise SelectionError(
            f"--models pattern {token!r} matches no registered model in timm "
            f"{_timm_version()} ({len(registry)} registered).{hint}")
    return matched


def expand_tokens(spec: str, registry: list[str], affected: Affected | None = None) -> list[tuple[str, list[str]]]:
    """Each token of ``--models spec`` with the models it selects, in order."""
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise SelectionError("--models is empty; use 'smoke', 'all', 'affected:SPEC' or fnmatch patterns")
    return [(t, _expand(t, registry, affected)) for t in tokens]


def resolve_models(spec: str, exclude: str = "", registry: list[str] | None = None,
                   affected: Affected | None = None) -> list[str]:
    """Ordered, de-duplicated model names for ``--models spec --exclude exclude``."""
    if registry is None:
        import timm
        registry = sorted(timm.list_models())
    expanded = expand_tokens(spec, registry, affected)
    selected = list(dict.fromkeys(m for _, names in expanded for m in names))
    drops = [p.strip() for p in exclude.split(",") if p.strip()]
    selected = [m for m in selected if not any(fnmatch.fnmatchcase(m, p) for p in drops)]
    if not selected:
        if all(t.startswith(AFFECTED) for t, _ in expanded):
            raise SelectionError(f"--models {spec!r}: no model is affected, so there is nothing to check "
                                 f"(add 'smoke' to check the smoke set anyway)")
        raise SelectionError(f"--models {spec!r} minus --exclude {exclude!r} leaves no model to check")
    return selected


def removed_smoke_models(spec: str, exclude: str = "", registry: list[str] | None = None) -> list[str]:
    """Smoke-set models the importable timm no longer registers, when ``spec`` names the
    smoke set: each is a failure ("model removed"), never silently dropped."""
    if "smoke" not in [t.strip() for t in spec.split(",")]:
        return []
    if registry is None:
        import timm
        registry = timm.list_models()
    registered = set(registry)
    drops = [p.strip() for p in exclude.split(",") if p.strip()]
    return [m for m in smoke.SMOKE_MODELS if m not in registered and not any(fnmatch.fnmatchcase(m, p) for p in drops)]


def smoke_only(expanded: list[tuple[str, list[str]]]) -> set[str]:
    """Models that only the 'smoke' token selected: the ones the smoke scopes curate
    (registry.smoke.SMOKE_SCOPES); a model also named by another token runs every case."""
    only = {m for t, names in expanded if t == "smoke" for m in names}
    return only - {m for t, names in expanded if t != "smoke" for m in names}
