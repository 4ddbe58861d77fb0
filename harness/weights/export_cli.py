"""``python -m harness export DIR [--models SPEC] [--exclude P] [--max-params N]`` writes
cross-version artifacts for the importable timm into DIR/<timm version>/ (see
harness.weights.artifacts). Exit codes: 0 all exported or up to date, 1 some model
failed, 2 usage error (e.g. a --models pattern that matches no registered model).

Runs under every timm from 0.9.16 on; old timm on new torch is noisy, so warnings are
silenced before timm is imported."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

for _category in (FutureWarning, DeprecationWarning, UserWarning):  # old timm on new torch is noisy
    warnings.filterwarnings("ignore", category=_category)

from harness.models import build  # noqa: E402 - after the warning filters
from harness.models.selection import DEFAULT_MAX_PARAMS, SelectionError, resolve_models  # noqa: E402
from harness.weights import artifacts  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    exp = argparse.ArgumentParser(prog="python -m harness export",
                                  description="write cross-version artifacts for the installed timm into DIR/<version>/")
    exp.add_argument("dir", type=Path)
    exp.add_argument("--models", default="smoke", help="fnmatch patterns, 'smoke' (default) or 'all', as for the suites")
    exp.add_argument("--exclude", default="", help="comma-separated fnmatch patterns removed from the selection")
    exp.add_argument("--max-params", type=int, default=DEFAULT_MAX_PARAMS,
                     help=f"skip models with more parameters (default {DEFAULT_MAX_PARAMS:,}, as the suites)")
    exp.add_argument("--missing-ok", action="store_true",
                     help="patterns that match no model of this release are reported and skipped "
                          "(used for baselines older than the selection)")
    return exp


def _select(args) -> list[str]:
    if not args.missing_ok:
        return resolve_models(args.models, args.exclude)
    names: list[str] = []
    for token in [t.strip() for t in args.models.split(",") if t.strip()]:
        try:
            names += resolve_models(token, args.exclude)
        except SelectionError as exc:
            print(f"note: {exc}", file=sys.stderr)
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        models = _select(args)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exporting {len(models)} model(s) for timm {build.timm_version()} into {args.dir / build.timm_version()}")
    results = artifacts.export(args.dir, models, args.max_params)
    failed = [m for m, s in results.items() if s.startswith("FAILED")]
    if failed:
        print(f"error: {len(failed)} model(s) failed to export: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
