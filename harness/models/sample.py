"""Named samples of the zoo, for runs too costly over every model: ``sample:modules`` is the
smallest model (by parameter count, ties by name) of each timm module that defines
models, so every model family's code runs once. Deterministic for a timm release.
The fixed, written-out samples of ``harness.registry.samples`` (``sample:random48``, the
benchmark's) are named the same way; a model of theirs that this timm lacks is dropped.

Parameter counts come from meta-device builds (nothing allocated), cached per timm
release in ``.cache/samples/<timm version>.json``; a model that does not build on the
meta device counts as infinitely large, so its module is still represented (by its
smallest buildable model, or by its first model by name when none builds: the census
then shows that failure).

    python -m harness sample [modules] [--counts]   # one name per line
    python -m pytest suites --models sample:modules
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

import timm

from harness.models import build
from harness.models.selection import SAMPLE
from harness.registry.paths import CACHE_DIR
from harness.registry.samples import SAMPLES as FIXED_SAMPLES

SAMPLES = ("modules", *sorted(FIXED_SAMPLES))
PREFIX = SAMPLE  # the --models token prefix, defined by the selection


def _cache_path() -> Path:
    return CACHE_DIR / "samples" / f"{build.timm_version()}.json"


def _meta_param_count(name: str) -> float:
    try:
        return float(build.param_count(build.create(name, device="meta")))
    except Exception:  # noqa: BLE001 - unbuildable on meta: counted as the largest
        return math.inf


def param_counts(names: list[str], count: Callable[[str], float] = _meta_param_count,
                 cache: Path | None = None) -> dict[str, float]:
    """Parameter count per model, from the per-release cache where present."""
    path = _cache_path() if cache is None else cache
    known: dict[str, float] = {}
    if path.is_file():
        known = {k: (math.inf if v is None else float(v)) for k, v in json.loads(path.read_text()).items()}
    missing = [n for n in names if n not in known]
    for i, name in enumerate(missing):
        known[name] = count(name)
        if (i + 1) % 100 == 0 or i + 1 == len(missing):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: (None if math.isinf(v) else int(v)) for k, v in sorted(known.items())}))
            tmp.replace(path)
    return {n: known[n] for n in names}


def smallest_per_module(counts: dict[str, float], module_of: Callable[[str], str]) -> list[str]:
    """The smallest model of each module (ties: first name), in module order."""
    by_module: dict[str, list[str]] = defaultdict(list)
    for name in counts:
        by_module[module_of(name)].append(name)
    return [min(names, key=lambda n: (counts[n], n)) for _, names in sorted(by_module.items())]


def sample(name: str, registry: list[str] | None = None) -> list[str]:
    """The models of a named sample (see SAMPLES)."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; known: {', '.join(SAMPLES)}")
    names = sorted(timm.list_models()) if registry is None else registry
    if name in FIXED_SAMPLES:
        known = set(names)
        return [m for m in FIXED_SAMPLES[name] if m in known]
    return smallest_per_module(param_counts(names), build.entrypoint_module)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness sample",
                                     description="print a named sample of the zoo, one model per line "
                                                 "(use it as --models sample:NAME)")
    parser.add_argument("name", nargs="?", default="modules", choices=SAMPLES)
    parser.add_argument("--counts", action="store_true", help="also print module and parameter count")
    args = parser.parse_args(argv)
    models = sample(args.name)
    counts = param_counts(models)
    for m in models:
        extra = f"\t{build.entrypoint_module(m).rsplit('.', 1)[-1]}\t{counts[m]:.0f}" if args.counts else ""
        print(f"{m}{extra}")
    what = "a fixed sample" if args.name in FIXED_SAMPLES else "the smallest of each timm module"
    print(f"{len(models)} models: {what} (timm {build.timm_version()})", file=sys.stderr)
    return 0
