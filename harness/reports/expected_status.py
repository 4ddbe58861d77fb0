"""The expected status of every test of a named scope (e.g. ``smoke``) on a timm release,
committed in ``expected/status-<scope>.json`` after review, and the check that a run
matches it: a run with ``--expected-status FILE`` fails on a new failure (a test that
fails but is not recorded as failing), on an unexpected pass (a test recorded as
failed or known issue that now passes), on a test recorded as passed that is now
skipped, and on a test recorded as passed that the run no longer collects at all
(missing: a case that vanished). Tests the file does not list are new: they may pass,
but a new test that fails is a new failure. Tests the run did not select (``-m``, ``-k``,
shards, the smoke scopes: every deselected id is in the results' meta), of models outside
its selection, or of suite files it did not collect, are not compared.

    python -m harness expected-status update reports/results.json --scope smoke
    python -m harness expected-status check expected/status-smoke.json reports/results.json
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.registry.paths import EXPECTED_DIR
from harness.registry.test_ids import model_of
from harness.reports.results import Results, load

DEFAULT_DIR = EXPECTED_DIR


def default_path(scope: str) -> Path:
    return DEFAULT_DIR / f"status-{scope}.json"


@dataclass
class Mismatch:
    new_failures: list[tuple[str, str, str]] = field(default_factory=list)     # (test, expected, message)
    unexpected_passes: list[tuple[str, str]] = field(default_factory=list)     # (test, expected)
    now_skipped: list[tuple[str, str]] = field(default_factory=list)           # (test, skip reason)
    missing: list[tuple[str, str]] = field(default_factory=list)               # (test, expected): not collected
    changed: list[tuple[str, str, str]] = field(default_factory=list)          # other changes (test, expected, got)
    not_run: int = 0
    compared: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.new_failures or self.unexpected_passes or self.now_skipped
                    or any(want == "passed" for _, want in self.missing))

    def render(self, source: str) -> str:
        lines = [f"expected status {source}: {self.compared} tests compared, {self.not_run} listed but not selected"]
        if self.new_failures:
            lines.append(f"NEW FAILURES ({len(self.new_failures)}): fail now, expected otherwise")
            lines += [f"  {t}  (expected {e}): {m}" for t, e, m in self.new_failures]
        if self.unexpected_passes:
            lines.append(f"UNEXPECTED PASSES ({len(self.unexpected_passes)}): pass now, expected to fail")
            lines += [f"  {t}  (expected {e})" for t, e in self.unexpected_passes]
        if self.now_skipped:
            lines.append(f"NOW SKIPPED ({len(self.now_skipped)}): expected passed, skipped now")
            lines += [f"  {t}: {why}" for t, why in self.now_skipped]
        gone = [(t, e) for t, e in self.missing if e == "passed"]
        if gone:
            lines.append(f"MISSING ({len(gone)}): expected passed, no longer collected (the case vanished)")
            lines += [f"  {t}" for t, _ in gone]
        other_gone = [(t, e) for t, e in self.missing if e != "passed"]
        if other_gone:
            lines.append(f"no longer collected ({len(other_gone)}, expected to fail or skip; not failing the run):")
            lines += [f"  {t}  (expected {e})" for t, e in other_gone]
        if self.changed:
            lines.append(f"other changes ({len(self.changed)}, not failing the run):")
            lines += [f"  {t}: expected {e}, got {g}" for t, e, g in self.changed[:50]]
        if not self.failed:
            lines.append("every compared test has its expected status")
        else:
            lines.append("after review, record the new status with: python -m harness expected-status update "
                         "REPORT_DIR/results.json --out " + source)
        return "\n".join(lines)


def read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--expected-status {path}: no such file (record one with "
                                f"`python -m harness expected-status update reports/results.json --scope NAME`)")
    data = json.loads(path.read_text())
    if not isinstance(data.get("status"), dict):
        raise ValueError(f"--expected-status {path}: not an expected-status file (no 'status' mapping)")
    return data


def _selected(test_id: str, meta: dict) -> bool:
    """Whether the run would have run this test: not deselected, its model selected and its
    suite file collected. Results without that record (older files) select nothing unseen."""
    if "models" not in meta or test_id in set(meta.get("deselected") or ()):
        return False
    files = set(meta.get("files") or ())
    return model_of(test_id) in set(meta["models"]) and (not files or test_id.split("::")[0] in files)


def compare(expected: dict[str, str], results: Results) -> Mismatch:
    mm = Mismatch()
    for tid, result in sorted(results.tests.items()):
        want, got = expected.get(tid), result.outcome
        mm.compared += 1
        if got == "failed" and want != "failed":
            mm.new_failures.append((tid, want or "not listed", result.message))
        elif got == "passed" and want in ("failed", "known issue"):
            mm.unexpected_passes.append((tid, want))
        elif got == "skipped" and want == "passed":
            mm.now_skipped.append((tid, result.message))
        elif want is not None and got != want:
            mm.changed.append((tid, want, got))
    for tid in sorted(set(expected) - set(results.tests)):
        if _selected(tid, results.meta):
            mm.missing.append((tid, expected[tid]))
        else:
            mm.not_run += 1
    return mm


def record(results: Results, scope: str) -> dict:
    """The file content for a reviewed run."""
    meta = results.meta
    return {"scope": scope, "timm": meta.get("timm"), "torch": meta.get("torch"),
            "selection": meta.get("selection"), "max_params": meta.get("max_params"),
            "note": "expected outcome per test id; update after review with "
                    "`python -m harness expected-status update reports/results.json --scope " + scope + "`",
            "status": {tid: r.outcome for tid, r in sorted(results.tests.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness expected-status", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("update", help="write the expected status from a reviewed run's results.json")
    up.add_argument("results")
    up.add_argument("--scope", default=None, help="scope name (default: the run's --models value)")
    up.add_argument("--out", default=None, help="default: expected/status-<scope>.json")
    ck = sub.add_parser("check", help="compare a run's results.json with an expected-status file")
    ck.add_argument("expected")
    ck.add_argument("results")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = load(args.results)
    if args.cmd == "update":
        scope = args.scope or str(results.meta.get("selection") or "custom")
        out = Path(args.out) if args.out else default_path(scope)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record(results, scope), indent=1, sort_keys=False) + "\n")
        print(f"wrote {out}: {len(results.tests)} tests, scope {scope!r}, timm {results.meta.get('timm')}")
        return 0
    try:
        data = read(args.expected)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mm = compare(data["status"], results)
    print(mm.render(args.expected))
    return 1 if mm.failed else 0
