"""The compatibility matrix: models x check families, one status per cell, built from
per-test results (``results.json``). Columns are the families present in the results,
so a check family that lands later joins the matrix without a change here.

Cell status, worst first: ``fail`` (any test failed), ``known`` (a known issue, strict
xfail), ``pass``, ``skip`` (every test skipped, e.g. by the memory guard), ``n/a`` (no test
of that family was collected for the model: the check does not apply).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.registry.check_families import CHECK_FAMILIES
from harness.reports.results import Results, TestResult

STATUSES = ("fail", "known", "pass", "skip", "n/a")
_OF_OUTCOME = {"failed": "fail", "known issue": "known", "passed": "pass", "skipped": "skip"}
SYMBOL = {"fail": "FAIL", "known": "known", "pass": "ok", "skip": "skip", "n/a": "-"}


@dataclass
class Cell:
    status: str = "n/a"
    counts: Counter = field(default_factory=Counter)  # outcome -> number of tests
    tests: list[TestResult] = field(default_factory=list)

    def add(self, result: TestResult) -> None:
        self.tests.append(result)
        self.counts[result.outcome] += 1
        status = _OF_OUTCOME[result.outcome]
        if self.status == "n/a" or STATUSES.index(status) < STATUSES.index(self.status):
            self.status = status

    @property
    def label(self) -> str:
        total = sum(self.counts.values())
        if self.status in ("fail", "known"):
            return f"{SYMBOL[self.status]} {self.counts['failed' if self.status == 'fail' else 'known issue']}/{total}"
        return SYMBOL[self.status]


@dataclass
class Matrix:
    models: list[str]
    families: list[str]
    cells: dict[tuple[str, str], Cell]
    meta: dict

    def cell(self, model: str, family: str) -> Cell:
        return self.cells.get((model, family)) or Cell()

    def model_status(self, model: str) -> str:
        statuses = [self.cell(model, f).status for f in self.families]
        return min(statuses, key=STATUSES.index) if statuses else "n/a"

    def totals(self) -> dict[str, Counter]:
        """family -> cell status -> number of models."""
        return {f: Counter(self.cell(m, f).status for m in self.models) for f in self.families}

    def failures(self) -> list[TestResult]:
        return sorted((r for c in self.cells.values() for r in c.tests if r.outcome == "failed"),
                      key=lambda r: (r.model, r.family, r.test))


def build_matrix(results: Results, family_order: tuple[str, ...] = ()) -> Matrix:
    """One cell per (model, family) from the per-test results."""
    cells: dict[tuple[str, str], Cell] = {}
    for result in results.tests.values():
        cells.setdefault((result.model, result.family), Cell()).add(result)
    present = {r.family for r in results.tests.values()}
    order = list(family_order or CHECK_FAMILIES)
    families = [f for f in order if f in present] + sorted(present - set(order))
    models = sorted({r.model for r in results.tests.values()} | set(results.meta.get("models", [])))
    return Matrix(models, families, cells, results.meta)


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(matrix: Matrix, max_failures: int = 200) -> str:
    meta = matrix.meta
    lines = [f"# Compatibility matrix: timm {meta.get('timm', '?')}", "",
             f"{len(matrix.models)} models x {len(matrix.families)} check families; "
             f"torch {meta.get('torch', '?')}; selection `{meta.get('selection', '?')}`"
             + (f"; shard {meta['shard']}" if meta.get("shard") else "") + ".",
             "Cells: `ok` pass, `FAIL k/n` k of n tests failed, `known k/n` known issues, "
             "`skip` all skipped, `-` not applicable.", ""]
    totals = matrix.totals()
    lines += ["| family | " + " | ".join(STATUSES) + " |", "|---" * (len(STATUSES) + 1) + "|"]
    for f in matrix.families:
        lines.append(f"| {f} | " + " | ".join(str(totals[f][s]) for s in STATUSES) + " |")
    lines += ["", "| model | " + " | ".join(matrix.families) + " |", "|---" * (len(matrix.families) + 1) + "|"]
    for m in matrix.models:
        lines.append(f"| {m} | " + " | ".join(matrix.cell(m, f).label for f in matrix.families) + " |")
    failures = matrix.failures()
    if failures:
        lines += ["", f"## Failures ({len(failures)})", ""]
        lines += [f"- `{r.test}` ({r.family}): {_esc(r.message)}" for r in failures[:max_failures]]
        if len(failures) > max_failures:
            lines.append(f"- ... and {len(failures) - max_failures} more (see results.json)")
    return "\n".join(lines) + "\n"
