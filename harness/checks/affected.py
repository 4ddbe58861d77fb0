"""``python -m harness affected --baseline SPEC --candidate SPEC [--models SEL]``: the models
a change of timm could have affected (harness.checks.fingerprint_diff has the rule), and
``--models affected:SPEC`` for the suites (baseline SPEC, candidate the importable timm).

The baseline is fingerprinted (traced once per tree and environment, cached and resumable,
harness.checks.fingerprint_store); the candidate's functions are hashed from its files and
its registry read in a subprocess, so two timm versions never meet in one process. With
``--trace-candidate`` the candidate is traced as well and both directions are compared;
``--verify`` also compares every model by brute force (both traced afresh, the executed
functions compared directly) and exits 1 when the rule missed a model brute force marks.

stdout: the affected model names, one per line. stderr: the summary and the reason per model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.checks.fingerprint_diff import (
    KINDS,
    Reason,
    Side,
    brute_force_reasons,
    kind_counts,
    reasons_for,
    top_functions,
)
from harness.checks.fingerprint_store import FINGERPRINTS, SpecError, Store, Tree, resolve_tree, traced_trees
from harness.models.selection import SelectionError, resolve_models
from harness.registry.paths import CACHE_DIR
from harness.weights.releases import ReleaseError, previous_release

RESULTS = CACHE_DIR / "affected"
RESULT_FORMAT = 1


@dataclass
class Result:
    baseline: Tree
    candidate: Tree
    selected: list[str]                    # models considered (registered in the candidate)
    affected: dict[str, list[Reason]]      # model -> why (in the candidate's registry order)
    removed: list[str]                     # selected in the baseline, gone from the candidate
    seconds: float
    disagreements: dict[str, list[str]] | None = None   # --verify: 'missed' / 'extra' -> models

    def to_json(self) -> dict:
        return {"format": RESULT_FORMAT, "baseline": self.baseline.version, "candidate": self.candidate.version,
                "selected": self.selected, "removed": self.removed, "seconds": self.seconds,
                "affected": {m: [r.to_json() for r in rs] for m, rs in self.affected.items()},
                "disagreements": self.disagreements}


def _side(store: Store, names: list[str], traces: dict[str, dict] | None = None) -> Side:
    return Side(store.tree.label, store.index(), store.models(names), traces or {})


def _reuser(store: Store, base: Path) -> Callable[[list[str]], dict[str, dict]]:
    """Records of other traced trees for models the static rule finds unchanged between
    that tree and this one (same code, cfgs and kwargs: same fingerprint)."""
    def reuse(missing: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for tree in traced_trees(base):
            if tree.digest == store.tree.digest or len(found) == len(missing):
                continue
            other = Store(tree, base)
            records = other.records()
            todo = [m for m in missing if m not in found and m in records and not records[m].get("incomplete")]
            if not todo:
                continue
            src, dst = _side(other, todo, records), _side(store, todo)
            for name in todo:
                if name in src.models and not reasons_for(name, src, dst, symmetric=False):
                    found[name] = {**records[name], "derived_from": other.key}
            other.index().save()
        return found
    return reuse


def compute(baseline: str, candidate: str = "installed", models: str = "all", exclude: str = "", jobs: int = 1,
            trace_candidate: bool = False, verify: bool = False, reuse: bool = True, retry_incomplete: bool = False,
            timeout: int = 1200, base_dir: Path = FINGERPRINTS) -> Result:
    """The affected models between two SPECs. Raises SpecError / SelectionError for bad input."""
    start = time.perf_counter()
    cand_tree = resolve_tree(candidate)
    if baseline == "previous":
        try:
            baseline = previous_release(cand_tree.version)
        except ReleaseError as exc:
            raise SpecError(str(exc)) from None
    base_tree = resolve_tree(baseline)
    base_store, cand_store = Store(base_tree, base_dir), Store(cand_tree, base_dir)
    cand_names, base_names = cand_store.names(), base_store.names()
    registry = list(cand_names) + sorted(set(base_names) - set(cand_names))
    selected_all = resolve_models(models, exclude, registry=registry)
    registered = set(cand_names)
    selected = [m for m in selected_all if m in registered]
    removed = [m for m in selected_all if m not in registered]
    fresh = verify or not reuse
    base_traces = base_store.traces(selected, jobs, None if fresh else _reuser(base_store, base_dir), timeout,
                                    traced_only=verify, retry_incomplete=retry_incomplete)
    cand_traces = {}
    if trace_candidate or verify:
        cand_traces = cand_store.traces(selected, jobs, None if fresh else _reuser(cand_store, base_dir), timeout,
                                        traced_only=verify, retry_incomplete=retry_incomplete)
    base_side, cand_side = _side(base_store, selected, base_traces), _side(cand_store, selected, cand_traces)
    affected = {}
    for name in selected:
        reasons = reasons_for(name, base_side, cand_side, symmetric=bool(cand_traces))
        if reasons:
            affected[name] = reasons
    disagreements = None
    if verify:
        brute = {n for n in selected if brute_force_reasons(n, base_side, cand_side)}
        static = {n for n in selected if reasons_for(n, base_side, cand_side, symmetric=False)}
        disagreements = {"missed": sorted(brute - static), "extra": sorted(static - brute)}
    base_store.index().save()
    cand_store.index().save()
    return Result(base_tree, cand_tree, selected, affected, removed, round(time.perf_counter() - start, 1),
                  disagreements)


# ---------------------------------------------------------------------- reporting

def summary_lines(result: Result, per_model: bool = True) -> list[str]:
    counts = kind_counts(result.affected)
    lines = [f"affected: {len(result.affected)} of {len(result.selected)} models between {result.baseline.label} "
             f"and {result.candidate.label} ({result.seconds:.0f} s)",
             "  by reason: " + (", ".join(f"{k} {counts[k]}" for k in KINDS if counts[k]) or "none")]
    if result.removed:
        lines.append(f"  not in {result.candidate.label} (removed, nothing to check): {', '.join(result.removed)}")
    top = top_functions(result.affected)
    if top:
        lines.append("  top changed functions (models):")
        lines += [f"    {count:5d}  {fid}" for fid, count in top]
    if result.disagreements is not None:
        d = result.disagreements
        lines.append(f"  verify (brute force over {len(result.selected)} models): {len(d['missed'])} missed, "
                     f"{len(d['extra'])} extra" + (f"; MISSED: {', '.join(d['missed'])}" if d["missed"] else "")
                     + (f"; extra: {', '.join(d['extra'])}" if d["extra"] else ""))
    if per_model and result.affected:
        lines.append("  per model:")
        for name, reasons in result.affected.items():
            lines.append(f"    {name}: " + " | ".join(f"{r.kind}: {r.detail}" for r in reasons))
    return lines


def short_summary(result: Result) -> str:
    """One line for the run summary: how many models and why."""
    counts = kind_counts(result.affected)
    top = top_functions(result.affected, 3)
    why = ", ".join(f"{k} {counts[k]}" for k in KINDS if counts[k]) or "nothing changed"
    lead = ("; most from " + ", ".join(f"{fid} ({n})" for fid, n in top)) if top else ""
    return (f"{len(result.affected)} models affected between {result.baseline.label} and {result.candidate.label} "
            f"({why}{lead})")


# ---------------------------------------------------------------------- the suites' --models affected:SPEC

def _result_path(baseline: Tree, candidate: Tree, models: str) -> Path:
    key = json.dumps([baseline.digest, candidate.digest, models, Store(baseline).key, Store(candidate).key])
    return RESULTS / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def affected_for_suites(spec: str, exclude: str = "",
                        say: Callable[[str], None] = lambda s: None) -> tuple[list[str], str]:
    """(model names, one-line summary) for ``--models affected:SPEC``: baseline SPEC
    ('previous' allowed), candidate the importable timm, every registered model not in
    ``exclude`` considered (excluded models are never checked, so never fingerprinted).
    The result is cached per pair of trees, so xdist workers read what the controller found."""
    try:
        candidate = resolve_tree("installed")
        baseline = previous_release(candidate.version) if spec == "previous" else spec
        base_tree = resolve_tree(baseline)
    except (SpecError, ReleaseError) as exc:
        raise SelectionError(f"--models affected:{spec}: {exc}") from None
    path = _result_path(base_tree, candidate, f"all - {exclude}")
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("format") == RESULT_FORMAT:
            return list(data["affected"]), data["summary"]
    try:
        result = compute(base_tree.spec, "installed", exclude=exclude,
                         jobs=int(os.environ.get("HARNESS_WORKERS", "1")))
    except SpecError as exc:
        raise SelectionError(f"--models affected:{spec}: {exc}") from None
    for line in summary_lines(result, per_model=False):
        say(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**result.to_json(), "summary": short_summary(result)}, indent=1))
    tmp.replace(path)
    return list(result.affected), short_summary(result)


# ---------------------------------------------------------------------- the command

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness affected",
                                description="models whose executed timm code, kwargs or pretrained cfgs differ "
                                            "between two timm trees (names on stdout, reasons on stderr)")
    p.add_argument("--baseline", required=True,
                   help="a release version, 'previous' (the release before the candidate), 'installed', or a "
                        "folder holding timm/")
    p.add_argument("--candidate", default="installed",
                   help="a release version, 'installed' (default: the timm this Python imports) or a folder "
                        "holding timm/")
    p.add_argument("--models", default="all", help="fnmatch patterns, 'smoke' or 'all' (default)")
    p.add_argument("--exclude", default="", help="comma-separated fnmatch patterns removed from the selection")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("HARNESS_WORKERS", "1")),
                   help="tracing worker processes (default $HARNESS_WORKERS or 1)")
    p.add_argument("--trace-candidate", action="store_true",
                   help="trace the candidate too and compare both directions")
    p.add_argument("--verify", action="store_true",
                   help="also compare by brute force (both traced afresh); exit 1 if the rule missed a model")
    p.add_argument("--no-reuse", action="store_true", help="trace every model instead of reusing fingerprints "
                                                           "of unchanged models from other traced trees")
    p.add_argument("--retry-incomplete", action="store_true",
                   help="trace again the models whose cached trace crashed or timed out")
    p.add_argument("--timeout", type=int, default=1200,
                   help="seconds one model's trace may take before it is recorded incomplete (default 1200)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        result = compute(args.baseline, args.candidate, args.models, args.exclude, max(1, args.jobs),
                         args.trace_candidate, args.verify, reuse=not args.no_reuse,
                         retry_incomplete=args.retry_incomplete, timeout=args.timeout)
    except (SpecError, SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in result.affected:
        print(name)
    sys.stdout.flush()
    for line in summary_lines(result):
        print(line, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    return 1 if result.disagreements and result.disagreements["missed"] else 0
