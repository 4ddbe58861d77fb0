"""The headless-browser check of matrix.html: a correct page passes, and a page whose script
is broken, whose filter is wrong or whose details are missing fails with a message naming
what did not work. Skipped where no Chromium is installed (CI); the page parser runs always."""
from __future__ import annotations

import pytest

from harness.reports.browser_check import check_page, find_browser, read_page
from harness.reports.html import render_html
from harness.reports.matrix import build_matrix
from harness.reports.results import Results, TestResult

FAMILIES = ("create", "onnx", "features")


def _results(n_models: int = 6) -> Results:
    tests = {}
    for i in range(n_models):
        model = f"{'vit' if i % 2 else 'resnet'}_m{i}"
        for family in FAMILIES:
            outcome = "failed" if (i, family) == (3, "onnx") else "known issue" if (i, family) == (4, "features") \
                else "passed"
            test = f"suites/test_{family}.py::test_{family}[{model}]"
            tests[test] = TestResult(test, model, family, outcome, message="it differed" if outcome != "passed" else "")
    return Results(tests, {"timm": "1.0.31", "torch": "2.14.1", "selection": "toy"})


@pytest.fixture
def page(tmp_path):
    def write(html: str | None = None):
        path = tmp_path / "matrix.html"
        path.write_text(html if html is not None else render_html(build_matrix(_results())))
        return path
    return write


def test_the_parser_reads_rows_cells_and_details(page):
    parsed = read_page(page().read_text())
    assert [m for m, _, _ in parsed.rows] == sorted(f"{'vit' if i % 2 else 'resnet'}_m{i}" for i in range(6))
    assert len(parsed.targets) == 2 and set(parsed.targets) == set(parsed.details) and parsed.shown == "6"


browser = pytest.mark.skipif(find_browser() is None, reason="no Chromium installed (apt-get install chromium)")


@browser
def test_a_correct_page_passes_in_the_browser(page):
    done, problems = check_page(page(), find_browser())
    assert problems == [] and len(done) == 5, problems


@browser
@pytest.mark.parametrize("old, new, failing", [
    ("function applyFilter(){", "function applyFilter(){ throw new Error('planted');",
     ("filter", "failures only", "open details")),  # the load handler stops at the error
    ("value.toLowerCase()", "value.toUpperCase()", ("filter",)),
    ("d.open=true;", "", ("open details",)),
], ids=["script-error", "filter-case", "details-do-not-open"])
def test_a_broken_page_fails_naming_what_broke(page, old, new, failing):
    html = render_html(build_matrix(_results()))
    assert old in html
    _, problems = check_page(page(html.replace(old, new)), find_browser())
    assert sorted(p.split(":")[0] for p in problems) == sorted(failing), problems


def test_a_cell_linking_to_missing_details_fails(page):
    html = render_html(build_matrix(_results()))
    broken = html.replace("<details id=", "<div id=", 1)
    if find_browser() is None:
        parsed = read_page(broken)
        assert set(parsed.targets) - set(parsed.details)
        return
    _, problems = check_page(page(broken), find_browser())
    assert any(p.startswith("details:") for p in problems), problems
