"""The benchmark family's CSV: rows with timm benchmark.py's columns travel from xdist
workers as user properties; the controller writes them at the end of the run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.checks.benchmark import CSV_COLUMNS


class BenchmarkCsv:
    """Controller-side plugin: rows travel from workers as user properties; written at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.rows += [json.loads(v) for k, v in report.user_properties if k == "benchmark_row"]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(sorted(self.rows, key=lambda r: r["model"]))
        terminalreporter.write_line(f"benchmark results ({len(self.rows)} models) written to {self.path}")


def register(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    path = config.getoption("--bench-csv") or (
        Path(config.getoption("--report-dir")) / "benchmark.csv" if config.getoption("--report-dir") else None)
    if path:
        config.pluginmanager.register(BenchmarkCsv(Path(path)), "harness-benchmark-csv")
