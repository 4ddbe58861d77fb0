"""Notes a passing test leaves for the reader, and data it hands to the controller: lines
that travel from xdist workers as user properties and are printed after the summary
(``harness_note``: e.g. a model whose graph breaks improved, a pretrained_cfg field a
release changed), written to ``<report-dir>/notes.md``; and the graph-break counts of an
``--update-graph-breaks`` run, merged into the record by the controller alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks.transforms import write_graph_breaks

NOTE = "harness_note"
GRAPH_BREAKS = "graph_breaks"


class Notes:
    def __init__(self, report_dir: Path | None, graph_breaks_file: Path | None):
        self.report_dir = report_dir
        self.graph_breaks_file = graph_breaks_file  # set on an --update-graph-breaks run
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == NOTE:
                self.notes.append(value)
            elif key == GRAPH_BREAKS and report.passed:
                self.counts.update(json.loads(value))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.graph_breaks_file is not None and self.counts:
            write_graph_breaks(self.graph_breaks_file, self.counts)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.graph_breaks_file is not None and self.counts:
            terminalreporter.write_line(f"graph breaks recorded for {len(self.counts)} model(s) in "
                                        f"{self.graph_breaks_file}")
        if not self.notes:
            return
        terminalreporter.write_sep("=", f"harness notes ({len(self.notes)})")
        for line in sorted(self.notes):
            terminalreporter.write_line(f"  {line}")
        if self.report_dir is not None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            path = self.report_dir / "notes.md"
            path.write_text("# Notes\n\n" + "".join(f"- {line}\n" for line in sorted(self.notes)))
            terminalreporter.write_line(f"notes written to {path}")


def register(config: pytest.Config) -> None:
    """On the controller (or a plain run)."""
    report_dir = config.getoption("--report-dir")
    update = config.getoption("--update-graph-breaks")
    config.pluginmanager.register(Notes(Path(report_dir) if report_dir else None,
                                        Path(config.getoption("--graph-breaks-file")) if update else None),
                                  "harness-notes")
