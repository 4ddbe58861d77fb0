"""End-of-run summary: one row per check family (passed, failed, known issue, skipped),
then the failures with the first line of what differed. Printed with rich and written
as Markdown so CI keeps it."""
from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from harness.registry.test_ids import model_of, param_id

OUTCOMES = ("passed", "failed", "known issue", "skipped")


def outcome_of(report) -> str | None:
    """Classify a test report; None for phases that do not decide the outcome."""
    if hasattr(report, "wasxfail"):
        return "known issue" if report.skipped else "failed"  # strict XPASS fails
    if report.when == "call" or report.failed or report.skipped:
        return report.outcome if report.outcome != "skipped" else "skipped"
    return None



def family_of(report, families) -> str | None:
    """The check family of a test report: the marker the plugin recorded on the item
    (user property ``harness_family``), else the first family among its keywords. The
    recorded marker comes first because keywords also hold every parent node's name, so a
    checkout in a folder named like a family ('features', 'golden') would claim every test."""
    found = dict(getattr(report, "user_properties", []) or []).get("harness_family")
    if found in families:
        return found
    keywords = getattr(report, "keywords", {}) or {}
    return next((f for f in families if f in keywords), None)


# lines for the run summary: how the selection came about (harness.plugin.collection adds
# them when it resolves --models, which may happen before this plugin is registered)
SELECTION_NOTES = pytest.StashKey[list]()


class RunSummary:
    """A pytest plugin object: collects outcomes, prints and writes the summary."""

    def __init__(self, families: tuple[str, ...], report_dir: Path | None = None):
        self.families = families
        self.report_dir = report_dir
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.failures: list[tuple[str, str, str]] = []  # (family, test id, first line)
        self.known: dict[str, list[str]] = defaultdict(list)  # reason -> test ids
        self.models: set[str] = set()
        self.not_applicable: list[tuple[str, str, str]] = []  # (model, family, why), set at session finish
        self.layers: set[str] = set()  # the layers family's subjects: timm.layers classes, not models
        self.notes: list[str] = []  # how the selection came about (SELECTION_NOTES, read at the end)

    def pytest_runtest_logreport(self, report) -> None:
        if any(f in report.keywords for f in self.families):
            self.add(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.counts:
            return
        self.notes = list(terminalreporter.config.stash.get(SELECTION_NOTES, []))
        terminalreporter.write_sep("=", "harness summary")
        terminalreporter.write(self.render())
        if self.report_dir is not None:
            terminalreporter.write_line(f"report written to {self.write(self.report_dir)}")

    def add(self, report) -> None:
        outcome = outcome_of(report)
        if outcome is None:
            return
        family = family_of(report, self.families) or "other"
        self.counts[family][outcome] += 1
        if param_id(report.nodeid) is not None:
            (self.layers if family == "layers" else self.models).add(model_of(report.nodeid))
        test_id = report.nodeid.split("::")[-1]
        if outcome == "failed":
            self.failures.append((family, test_id, _first_line(report)))
        elif outcome == "known issue":
            self.known[report.wasxfail].append(test_id)

    def table(self) -> Table:
        layers = f", {len(self.layers)} layers" if self.layers else ""
        table = Table(title=f"timm regression harness: {len(self.models)} models{layers}")
        table.add_column("check family")
        for o in OUTCOMES:
            table.add_column(o, justify="right")
        for family in [f for f in self.families if f in self.counts] + (["other"] if "other" in self.counts else []):
            c = self.counts[family]
            table.add_row(family, *(str(c[o]) for o in OUTCOMES))
        return table

    def markdown(self) -> str:
        lines = [*(f"{n}  " for n in self.notes), *([""] if self.notes else []),
                 "| check family | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 1) + "|"]
        for family, c in self.counts.items():
            lines.append(f"| {family} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
        if self.failures:
            lines += ["", "## Failures", ""]
            lines += [f"- `{tid}` ({fam}): {msg}" for fam, tid, msg in self.failures]
        if self.known:
            lines += ["", "## Known issues", ""]
            for reason, tests in self.known.items():
                lines.append(f"- {reason}")
                lines += [f"  - `{t}`" for t in tests]
        if self.not_applicable:
            lines += ["", "## Not applicable (no test collected)", "", "| model | check family | why |",
                      "|---|---|---|"]
            lines += [f"| {m} | {f} | {why} |" for m, f, why in self.not_applicable]
        return "\n".join(lines) + "\n"

    def render(self, width: int = 120) -> str:
        buf = io.StringIO()
        console = Console(file=buf, width=width, force_terminal=False)
        for note in self.notes:
            console.print(note, highlight=False, markup=False)
        console.print(self.table())
        for family, tid, msg in self.failures[:50]:
            console.print(f"FAILED {tid} [{family}]: {msg}", highlight=False, markup=False)
        if len(self.failures) > 50:
            console.print(f"... and {len(self.failures) - 50} more failures")
        for reason, tests in self.known.items():
            shown = ", ".join(tests[:4]) + (f" and {len(tests) - 4} more" if len(tests) > 4 else "")
            console.print(f"KNOWN ISSUE x{len(tests)}: {reason}\n    {shown}", highlight=False, markup=False)
        for (family, why), models in _grouped(self.not_applicable).items():
            shown = ", ".join(models[:6]) + (f" and {len(models) - 6} more" if len(models) > 6 else "")
            console.print(f"NOT APPLICABLE {family} x{len(models)}: {why}\n    {shown}", highlight=False, markup=False)
        return buf.getvalue()

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "summary.md"
        path.write_text(self.markdown())
        return path


def _grouped(rows: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """(family, why) -> models, in first-seen order."""
    out: dict[tuple[str, str], list[str]] = {}
    for model, family, why in rows:
        out.setdefault((family, why), []).append(model)
    return out


def _first_line(report) -> str:
    text = str(getattr(report, "longrepr", "") or "")
    for line in text.splitlines():
        if line.startswith("E "):
            return line[1:].strip()[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else ""
