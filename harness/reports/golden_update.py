"""The summary of an ``--update-golden`` run: one line per recorded model saying whether
it is new, unchanged within noise, or what changed and by how much. Lines travel from
xdist workers as user properties; the controller prints them and, with --report-dir,
writes golden-update.md."""
from __future__ import annotations

from pathlib import Path

import pytest


class GoldenUpdateSummary:
    def __init__(self, report_dir: Path | None):
        self.report_dir = report_dir
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.lines += [v for k, v in report.user_properties if k == "golden_update"]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.lines:
            return
        changed = [line for line in self.lines if ": CHANGED" in line or "unreadable" in line]
        new = [line for line in self.lines if line.endswith(": new")]
        head = (f"golden update: {len(self.lines)} recorded, {len(new)} new, {len(changed)} changed, "
                f"{len(self.lines) - len(new) - len(changed)} unchanged within noise")
        terminalreporter.write_sep("=", "golden update")
        terminalreporter.write_line(head)
        for line in sorted(self.lines):
            terminalreporter.write_line(f"  {line}")
        if self.report_dir is not None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            path = self.report_dir / "golden-update.md"
            path.write_text(f"# {head}\n\n" + "".join(f"- {line}\n" for line in sorted(self.lines)))
            terminalreporter.write_line(f"golden update summary written to {path}")


def register(config: pytest.Config) -> None:
    """On the controller of an --update-golden run."""
    if config.getoption("--update-golden") and not hasattr(config, "workerinput"):
        report_dir = config.getoption("--report-dir")
        config.pluginmanager.register(GoldenUpdateSummary(Path(report_dir) if report_dir else None),
                                      "harness-golden-update")
