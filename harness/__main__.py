"""Command line: ``python -m harness export DIR [--models SPEC] [--exclude P] [--max-params N]``
writes cross-version artifacts for the importable timm into DIR/<timm version>/ (see
harness.artifacts). Exit codes: 0 all exported or up to date, 1 some model failed,
2 usage error (e.g. a --models pattern that matches no registered model)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MAX_PARAMS = 100_000_000  # the suites' default (harness.pytest_plugin)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write cross-version artifacts for the installed timm into DIR/<version>/")
    exp.add_argument("dir", type=Path)
    exp.add_argument("--models", default="smoke", help="fnmatch patterns, 'smoke' (default) or 'all', as for the suites")
    exp.add_argument("--exclude", default="", help="comma-separated fnmatch patterns removed from the selection")
    exp.add_argument("--max-params", type=int, default=DEFAULT_MAX_PARAMS,
                     help=f"skip models with more parameters (default {DEFAULT_MAX_PARAMS:,}, as the suites)")
    exp.add_argument("--missing-ok", action="store_true",
                     help="patterns that match no model of this release are reported and skipped "
                          "(used for baselines older than the selection)")
    return parser


def _select(args) -> list[str]:
    from harness.selection import SelectionError, resolve_models

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
    import warnings

    for category in (FutureWarning, DeprecationWarning, UserWarning):  # old timm on new torch is noisy
        warnings.filterwarnings("ignore", category=category)
    from harness import artifacts, build
    from harness.selection import SelectionError

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


if __name__ == "__main__":
    sys.exit(main())
