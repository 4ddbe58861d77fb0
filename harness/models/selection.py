"""Which models a run covers: fnmatch patterns over timm's registry, 'all', the
curated 'smoke' set (registry.smoke) or a named sample ('sample:modules', models.sample);
minus --exclude. A pattern that matches nothing is
a usage error, never an empty green run."""
from __future__ import annotations

import difflib
import fnmatch

import timm

from harness.models import sample
from harness.registry import smoke

# Models above this many parameters get only the structural checks, on the meta device.
DEFAULT_MAX_PARAMS = 100_000_000


class SelectionError(ValueError):
    """A --models/--exclude value that cannot be honoured; the message says why."""


def _expand(token: str, registry: list[str]) -> list[str]:
    if token == "all":
        return list(registry)
    if token.startswith(sample.PREFIX):
        try:
            return sample.sample(token[len(sample.PREFIX):], registry)
        except ValueError as exc:
            raise SelectionError(f"--models {token!r}: {exc}") from None
    if token == "smoke":
        return [m for m in smoke.SMOKE_MODELS if m in set(registry)]
    matched = fnmatch.filter(registry, token)
    if not matched:
        close = difflib.get_close_matches(token.replace("*", ""), registry, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise SelectionError(
            f"--models pattern {token!r} matches no registered model in timm "
            f"{timm.__version__} ({len(registry)} registered).{hint}")
    return matched


def resolve_models(spec: str, exclude: str = "", registry: list[str] | None = None) -> list[str]:
    """Ordered, de-duplicated model names for ``--models spec --exclude exclude``."""
    registry = sorted(timm.list_models()) if registry is None else registry
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise SelectionError("--models is empty; use 'smoke', 'all' or fnmatch patterns")
    selected = list(dict.fromkeys(m for t in tokens for m in _expand(t, registry)))
    drops = [p.strip() for p in exclude.split(",") if p.strip()]
    selected = [m for m in selected if not any(fnmatch.fnmatchcase(m, p) for p in drops)]
    if not selected:
        raise SelectionError(f"--models {spec!r} minus --exclude {exclude!r} leaves no model to check")
    return selected


def removed_smoke_models(spec: str, exclude: str = "", registry: list[str] | None = None) -> list[str]:
    """Smoke-set models the importable timm no longer registers, when ``spec`` names the
    smoke set: each is a failure ("model removed"), never silently dropped."""
    if "smoke" not in [t.strip() for t in spec.split(",")]:
        return []
    registered = set(timm.list_models() if registry is None else registry)
    drops = [p.strip() for p in exclude.split(",") if p.strip()]
    return [m for m in smoke.SMOKE_MODELS if m not in registered and not any(fnmatch.fnmatchcase(m, p) for p in drops)]
