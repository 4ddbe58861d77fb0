"""A diff between two runs' results (``results.json``): new failures since the old run
(e.g. "since timm 1.0.30"), failures fixed since, known issues that appeared or went,
tests added or removed. Test ids are the keys, so runs of different timm releases or
harness versions compare test by test.

    python -m harness diff OLD NEW [--out diff.md]   # exit 1 when NEW has new failures
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.reports.results import Results, TestResult, load

BAD = ("failed",)


@dataclass
class Diff:
    old_label: str
    new_label: str
    new_failures: list[tuple[TestResult | None, TestResult]] = field(default_factory=list)
    fixed: list[tuple[TestResult, TestResult]] = field(default_factory=list)
    new_known: list[tuple[TestResult | None, TestResult]] = field(default_factory=list)
    known_resolved: list[tuple[TestResult, TestResult]] = field(default_factory=list)
    added: list[TestResult] = field(default_factory=list)
    removed: list[TestResult] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.new_failures)


def _label(results: Results) -> str:
    return f"timm {results.meta.get('timm', '?')}"


def diff_results(old: Results, new: Results) -> Diff:
    """Compare test by test. A test new in NEW that fails counts as a new failure."""
    d = Diff(_label(old), _label(new))
    for tid, now in sorted(new.tests.items()):
        before = old.tests.get(tid)
        was = before.outcome if before else None
        if now.outcome == "failed" and was != "failed":
            d.new_failures.append((before, now))
        elif was == "failed" and now.outcome in ("passed", "known issue"):
            d.fixed.append((before, now))
        if now.outcome == "known issue" and was != "known issue":
            d.new_known.append((before, now))
        elif was == "known issue" and now.outcome == "passed":
            d.known_resolved.append((before, now))
        if before is None:
            d.added.append(now)
    d.removed = [r for tid, r in sorted(old.tests.items()) if tid not in new.tests]
    return d


def markdown(d: Diff, limit: int = 300) -> str:
    lines = [f"# Report diff: {d.new_label} vs {d.old_label}", "",
             f"- new failures since {d.old_label}: {len(d.new_failures)}",
             f"- fixed since {d.old_label}: {len(d.fixed)}",
             f"- new known issues: {len(d.new_known)}; known issues now passing: {len(d.known_resolved)}",
             f"- tests added: {len(d.added)}; tests removed: {len(d.removed)}", ""]

    def section(title: str, rows: list[str]) -> None:
        if rows:
            lines.extend([f"## {title} ({len(rows)})", "", *rows[:limit]])
            if len(rows) > limit:
                lines.append(f"- ... and {len(rows) - limit} more")
            lines.append("")

    section(f"New failures since {d.old_label}",
            [f"- `{n.test}` ({n.family}; was {b.outcome if b else 'not run'}): {n.message}"
             for b, n in d.new_failures])
    section(f"Fixed since {d.old_label}", [f"- `{n.test}` ({n.family}; now {n.outcome}): was: {b.message}"
                                           for b, n in d.fixed])
    section("New known issues", [f"- `{n.test}` ({n.family}): {n.message}" for _, n in d.new_known])
    section("Known issues now passing", [f"- `{n.test}` ({n.family})" for _, n in d.known_resolved])
    section("Tests removed", [f"- `{r.test}` (was {r.outcome})" for r in d.removed])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="results.json (or its directory) of the earlier run")
    parser.add_argument("new", help="results.json (or its directory) of the later run")
    parser.add_argument("--out", help="also write the diff as Markdown here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    d = diff_results(load(args.old), load(args.new))
    text = markdown(d)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if d.regressed else 0
