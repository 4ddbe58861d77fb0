"""Per-test results of a suite run, gathered on the controller from test reports (so it
works under xdist, crashed workers included) and stored as one JSON file
(``reports/results.json``). The matrix, the HTML page, report diffs and expected-status
checks are all made from that file, never from terminal output.

A result is keyed by its test id (``file::function[params]``, the id the contract fixes);
its model comes from the parameter id (registry.test_ids.model_of) and its check family
from the test's marker.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from harness.registry.test_ids import model_of
from harness.reports.summary import family_of, outcome_of

RESULTS_FILE = "results.json"
SCHEMA = 1
# precedence when a test reports several phases (setup, call, teardown): worst wins
_RANK = {"skipped": 0, "passed": 1, "known issue": 2, "failed": 3}


@dataclass
class TestResult:
    test: str           # the node id, e.g. suites/test_create.py::test_create_variant[resnet18-scratch-default]
    model: str
    family: str
    outcome: str        # passed | failed | known issue | skipped
    message: str = ""   # first line of what differed / the skip or known-issue reason
    detail: str = ""    # the longer failure text (truncated)
    duration: float = 0.0
    worker: str = ""
    slow: bool = False  # in the slow scope (registry.scopes), collected with --slow


@dataclass
class Results:
    tests: dict[str, TestResult] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "meta": self.meta,
                "results": [asdict(r) for r in sorted(self.tests.values(), key=lambda r: r.test)]}

    @staticmethod
    def from_json(data: dict) -> "Results":
        if data.get("schema") != SCHEMA or "results" not in data:
            raise ValueError(f"not a harness results file (schema {data.get('schema')!r}, expected {SCHEMA})")
        return Results({r["test"]: TestResult(**r) for r in data["results"]}, data.get("meta", {}))

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        return path

    def models(self) -> list[str]:
        return sorted({r.model for r in self.tests.values()})

    def families(self) -> list[str]:
        return sorted({r.family for r in self.tests.values()})


def load(path: str | Path) -> Results:
    """A results file, with a clear error for a missing or foreign file."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise SystemExit(f"error: no results file at {path} (a suite run with --report-dir DIR writes DIR/{RESULTS_FILE})")
    try:
        return Results.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f"error: {path} is not a harness results file: {exc}") from None


def first_line(longrepr) -> tuple[str, str]:
    """(the first line of what differed, the longer text) from a report's longrepr."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, line, reason)
        text = str(longrepr[2])
        return text.removeprefix("Skipped: "), ""
    text = str(longrepr or "")
    lines = text.splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ") and any(c.isalnum() for c in line[1:])]
    timeouts = [line.strip(" |") for line in lines if "Timeout (>" in line]
    errors = errors or timeouts
    head = " ".join(errors[:3]) if errors else (lines[-1].strip() if lines else "")
    return head[:300], "\n".join(errors or lines[-30:])[:4000]


class ResultsCollector:
    """A pytest plugin object for the controller (or a run without xdist)."""

    def __init__(self, families: Iterable[str], meta: dict | None = None):
        self.families = tuple(families)
        self.results = Results(meta=dict(meta or {}))
        self.started = time.time()

    def family_of(self, report) -> str | None:
        return family_of(report, self.families)

    def add(self, report) -> TestResult | None:
        family = self.family_of(report)
        outcome = outcome_of(report)
        if family is None:
            return None
        props = dict(getattr(report, "user_properties", []) or [])
        node = getattr(report, "node", None)
        worker = getattr(getattr(node, "gateway", None), "id", "") or props.get("harness_worker", "")
        result = self.results.tests.get(report.nodeid)
        if result is None:
            result = TestResult(report.nodeid, props.get("harness_model") or model_of(report.nodeid), family, "skipped",
                                worker=str(worker))
            self.results.tests[report.nodeid] = result
        result.duration += float(getattr(report, "duration", 0.0) or 0.0)
        result.slow = result.slow or bool(props.get("harness_slow"))
        if outcome is None:
            return result
        if outcome == "known issue":
            message, detail = str(report.wasxfail), first_line(report.longrepr)[1]
        else:
            message, detail = first_line(report.longrepr) if outcome != "passed" else ("", "")
        if _RANK[outcome] >= _RANK[result.outcome] or result.outcome == "skipped":
            result.outcome = outcome
            if message or outcome == "passed":
                result.message, result.detail = message, detail
        return result

    def pytest_runtest_logreport(self, report) -> None:
        self.add(report)

    def finish(self, directory: Path, extra_meta: dict | None = None) -> Path:
        self.results.meta.update(extra_meta or {}, wall_s=round(time.time() - self.started, 2),
                                 finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 host=platform.node())
        return self.results.write(directory / RESULTS_FILE)
