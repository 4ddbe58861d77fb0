"""The sweep machinery end to end on toy models: the matrix and results.json from a run
with planted failures (a contract bug and a segfaulting worker, under xdist), the HTML
page, report diffs, expected status (new failure, unexpected pass), shards (a balanced,
deterministic partition), the memory guard and per-test timeouts."""
from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from harness.plugin import sharding
from harness.plugin.scheduling import ModelScheduling
from harness.reports import diff as report_diff
from harness.reports import expected_status
from harness.reports.matrix import build_matrix, markdown
from harness.reports.progress import Progress
from harness.reports.results import Results, load
from tests.helpers import run_suites

TOYS = ["-p", "tests.toys.toy_models", "-p", "tests.toys.toy_sweep_models"]
STRICT = "suites/test_create.py::test_create_variant[toy_strict_head-pretrained-head_]"
CRASH = "suites/test_create.py::test_create_variant[toy_segfault-scratch-num_classes_7]"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One xdist run over a correct toy, a contract bug and a segfaulting forward."""
    tmp = tmp_path_factory.mktemp("sweep")
    run = run_suites(TOYS + ["--models", "toy_ok,toy_strict_head,toy_segfault", "-m", "create or pretrained",
                             "-k", "not nonstrict", "-n", "2", "--group-models", "--progress-every", "0.01",
                             "--report-dir", str(tmp / "reports")], tmp)
    return run, tmp / "reports"


def test_matrix_is_built_from_per_test_results(swept):
    run, reports = swept
    assert run.returncode == 1, run.output
    results = load(reports / "results.json")
    assert results.tests[STRICT].outcome == "failed" and "Unexpected key(s)" in results.tests[STRICT].detail
    matrix = build_matrix(results)
    assert matrix.families == ["create", "pretrained"]
    assert matrix.models == ["toy_ok", "toy_segfault", "toy_strict_head"]
    assert [matrix.cell("toy_ok", f).status for f in matrix.families] == ["pass", "pass"]
    assert matrix.cell("toy_strict_head", "pretrained").status == "fail"
    assert matrix.cell("toy_strict_head", "pretrained").label == "FAIL 1/8"
    assert matrix.cell("toy_strict_head", "create").status == "pass"
    md = (reports / "matrix.md").read_text()
    assert "| toy_strict_head | ok | FAIL 1/8 |" in md and STRICT in md


def test_a_crashed_worker_costs_only_the_test_it_ran(swept):
    run, reports = swept
    results = load(reports / "results.json")
    crashed = {t for t, r in results.tests.items() if "crashed" in r.detail or "crash:" in r.message}
    # num_classes=7 segfaults in each load mode that builds it: scratch and pretrained
    assert crashed == {CRASH, CRASH.replace("scratch", "pretrained")}, run.output
    assert all(results.tests[t].family in ("create", "pretrained") and results.tests[t].model == "toy_segfault"
               for t in crashed)
    others = [r for t, r in results.tests.items() if r.model == "toy_segfault" and t not in crashed]
    assert len(others) == 13 and all(r.outcome == "passed" for r in others)
    assert build_matrix(results).cell("toy_segfault", "create").label == "FAIL 1/8"
    junit = {c.get("name"): [ch.tag for ch in c] for c in ET.parse(reports.parent / "junit.xml").getroot().iter("testcase")}
    assert "failure" in junit[CRASH.split("::")[1]] or "error" in junit[CRASH.split("::")[1]]
    # --group-models does not re-run a crashed test (xdist's LoadScope would, crashing again)
    # (xdist's "replacing crashed worker" line is hidden under -q; its per-crash report is not,
    # and it repeats in -rfE's summary): one worker crashed per test, none re-ran it elsewhere
    for test in crashed:
        assert len(set(re.findall(rf"worker (gw\d+) crashed while running {re.escape(test)}", run.output))) == 1, run.output
    assert "maximum crashed workers" not in run.output


def test_progress_lines_come_from_the_controller(swept):
    run, _ = swept
    assert "[harness progress] models 3/3, tests 49/49 (100.0%)" in run.output, run.output


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.external, self.details = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "cell" in (attrs.get("class") or ""):
            self.cells.append(attrs["class"].split()[1])
        if tag in ("script", "link", "img") and (attrs.get("src") or attrs.get("href")):
            self.external.append(attrs)
        if tag == "details":
            self.details.append(attrs.get("id"))


def test_html_page_is_self_contained_and_holds_the_heat_map(swept):
    _, reports = swept
    page = (reports / "matrix.html").read_text()
    parser = _Cells()
    parser.feed(page)
    assert parser.external == [] and "http" not in page
    assert sorted(parser.cells) == sorted(["pass"] * 2 + ["fail", "fail"] + ["pass", "fail"])
    assert len(parser.details) == 3 and "Unexpected key(s)" in page


def _flip(results: Results, test: str, outcome: str) -> Results:
    changed = copy.deepcopy(results)
    changed.tests[test].outcome = outcome
    changed.tests[test].message = f"planted {outcome}"
    return changed


def test_diff_reports_new_failures_and_fixes(swept):
    _, reports = swept
    old = load(reports / "results.json")
    ok = "suites/test_create.py::test_create_variant[toy_ok-scratch-default]"
    new = _flip(_flip(old, ok, "failed"), STRICT, "passed")
    new.meta["timm"] = "9.9.9"
    d = report_diff.diff_results(old, new)
    assert [n.test for _, n in d.new_failures] == [ok] and [n.test for _, n in d.fixed] == [STRICT]
    text = report_diff.markdown(d)
    assert "New failures since timm 1.0.31 (1)" in text and "Fixed since timm 1.0.31 (1)" in text
    assert report_diff.main([str(reports / "results.json"), str(reports / "results.json")]) == 0


def test_expected_status_flags_new_failures_and_unexpected_passes(swept, tmp_path):
    _, reports = swept
    results = load(reports / "results.json")
    path = tmp_path / "status.json"
    assert expected_status.main(["update", str(reports / "results.json"), "--scope", "toys", "--out", str(path)]) == 0
    recorded = json.loads(path.read_text())["status"]
    assert recorded[STRICT] == "failed" and len(recorded) == len(results.tests)
    assert not expected_status.compare(recorded, results).failed
    ok = "suites/test_create.py::test_create_variant[toy_ok-scratch-default]"
    mm = expected_status.compare(recorded, _flip(_flip(results, ok, "failed"), STRICT, "passed"))
    assert [t for t, _, _ in mm.new_failures] == [ok] and mm.unexpected_passes == [(STRICT, "failed")]
    assert "NEW FAILURES (1)" in mm.render("x") and "UNEXPECTED PASSES (1)" in mm.render("x")


def test_expected_status_option_sets_the_exit_code(tmp_path):
    """A recorded failure keeps the run green; a test recorded as failing that passes
    (unexpected pass) and a failure not recorded (new failure) make it fail, listed."""
    ok, strict = ("test_create_variant[toy_ok-pretrained-default]", "test_create_variant[toy_strict_head-pretrained-head_]")
    args = TOYS + ["--models", "toy_ok,toy_strict_head", "-m", "pretrained", "-k", "pretrained-default or pretrained-head_",
                   "-k", "not nonstrict"]
    status = {f"suites/test_create.py::{ok}": "passed", f"suites/test_create.py::{strict}": "failed"}
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"scope": "t", "status": status}))
    run = run_suites(args + ["--expected-status", str(good)], tmp_path)
    assert run.returncode == 0 and "every compared test has its expected status" in run.output, run.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scope": "t", "status": {f"suites/test_create.py::{ok}": "failed",
                                                         f"suites/test_create.py::{strict}": "passed"}}))
    run = run_suites(args + ["--expected-status", str(bad)], tmp_path)
    assert run.returncode == 1, run.output
    assert "NEW FAILURES (1)" in run.output and "UNEXPECTED PASSES (1)" in run.output
    missing = run_suites(args + ["--expected-status", str(tmp_path / "nope.json")], tmp_path)
    assert missing.returncode == 4 and "no such file" in missing.output


def test_shards_are_a_deterministic_balanced_partition():
    weights = {f"m{i:03d}": float((i * 37) % 23 + 1) for i in range(200)}
    shards = sharding.assign(weights, 4)
    assert sorted(m for s in shards for m in s) == sorted(weights)
    loads = [sum(weights[m] for m in s) for s in shards]
    assert max(loads) - min(loads) <= max(weights.values())  # LPT bound
    assert shards == sharding.assign(dict(reversed(list(weights.items()))), 4)
    est = sharding.estimates({"a": 10, "b": 10, "c": 2}, {"a": 20.0})
    assert est == {"a": 20.0, "b": 20.0, "c": 4.0}
    with pytest.raises(ValueError, match="expected I/N"):
        sharding.parse_shard("3")
    with pytest.raises(ValueError, match="1 <= I <= N"):
        sharding.parse_shard("5/4")


def test_shard_option_splits_the_collection_by_model(tmp_path):
    base = TOYS + ["--models", "toy_ok,toy_strict_head,toy_nan_output,toy_hog", "-m", "create", "--collect-only"]
    ids = []
    for spec in ("1/2", "2/2", None):
        run = run_suites(base + (["--shard", spec] if spec else []), tmp_path)
        assert run.returncode == 0, run.output
        ids.append({line.strip() for line in run.output.splitlines() if "test_create_variant[" in line})
    one, two, full = ids
    assert one and two and not (one & two) and one | two == full
    models = [{t.split("[")[1].split("-")[0] for t in s} for s in (one, two)]
    assert not (models[0] & models[1]) and len(models[0]) == len(models[1]) == 2
    bad = run_suites(base + ["--shard", "3/2"], tmp_path)
    assert bad.returncode == 4 and "1 <= I <= N" in bad.output


def test_memory_guard_fails_the_test_that_peaks_and_skips_models_too_big(tmp_path):
    args = TOYS + ["--models", "toy_hog", "-m", "create", "-k", "default or num_classes_7"]
    run = run_suites(args + ["--max-rss-gb", "1.0"], tmp_path)
    hog = "test_create_variant[toy_hog-scratch-num_classes_7]"
    assert run.outcomes == {hog: "failed", "test_create_variant[toy_hog-scratch-default]": "passed"}, run.output
    assert "memory guard: peak RSS" in run.messages[hog] and "exceeded --max-rss-gb 1" in run.messages[hog]
    run = run_suites(args + ["--max-rss-gb", "0.3"], tmp_path)
    assert set(run.outcomes.values()) == {"skipped"}, run.output
    assert "numeric checks need about 0.6 GB, over --max-rss-gb 0.3" in next(iter(run.messages.values()))


def test_timeout_fails_only_the_slow_test(tmp_path):
    run = run_suites(TOYS + ["--models", "toy_slow", "-m", "create", "-k", "default or num_classes_7",
                             "--timeout", "3"], tmp_path)
    slow = "test_create_variant[toy_slow-scratch-num_classes_7]"
    assert run.outcomes == {slow: "failed", "test_create_variant[toy_slow-scratch-default]": "passed"}, run.output
    assert "Timeout (>3.0s)" in run.messages[slow]


def test_matrix_marks_not_applicable_cells():
    results = Results.from_json({"schema": 1, "meta": {"timm": "x"}, "results": [
        {"test": "s::t[a-x]", "model": "a", "family": "create", "outcome": "passed"},
        {"test": "s::r[a]", "model": "a", "family": "reparam", "outcome": "known issue", "message": "why"},
        {"test": "s::t[b-x]", "model": "b", "family": "create", "outcome": "skipped"}]})
    matrix = build_matrix(results)
    assert matrix.cell("b", "reparam").status == "n/a" and matrix.cell("b", "create").status == "skip"
    assert "| a | ok | known 1/1 |" in markdown(matrix) and "| b | skip | - |" in markdown(matrix)


def test_progress_counts_models_and_estimates_time_left():

    now = [0.0]
    lines = []
    progress = Progress(10, lines.append, clock=lambda: now[0])
    progress.set_tests(["s::t[a-1]", "s::t[a-2]", "s::t[b-1]", "s::t[c-1]"])
    progress.set_tests(["s::t[a-1]"])  # a second xdist worker's collection is ignored
    for i, (nid, failed) in enumerate([("s::t[a-1]", False), ("s::t[a-2]", True), ("s::t[b-1]", False)]):
        now[0] = 10.0 * (i + 1)
        progress.finished(nid, failed)
    assert lines[-1] == ("[harness progress] models 2/3, tests 3/4 (75.0%), 1 failed, elapsed 0m30s, ETA 0m10s")


def test_model_scheduler_groups_by_model_and_never_reruns_a_crashed_test():
    from collections import OrderedDict


    sched = object.__new__(ModelScheduling)  # the state xdist keeps; no workers needed
    assert sched._split_scope("suites/test_create.py::test_create_variant[resnet18-scratch-default]") == "resnet18"
    assert sched._split_scope("suites/test_reparam.py::test_reparam_equivalence[resnet18]") == "resnet18"
    node = object()
    sched.workqueue, sched.registered_collections = OrderedDict(), {}
    sched.assigned_work = {node: {"m": {"t[m-1]": True, "t[m-2]": False, "t[m-3]": False},
                                  "n": {"t[n-1]": True}}}
    assert sched.remove_node(node) == "t[m-2]"
    assert sched.workqueue == {"m": {"t[m-1]": True, "t[m-2]": True, "t[m-3]": False}}


def test_a_grouped_worker_keeps_one_models_files_on_disk(tmp_path):
    from harness.plugin.sweep import MODEL_CACHE_DIRS, free_previous_model
    state: dict = {}

    def fill():
        for name in MODEL_CACHE_DIRS:
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / "weights.pth").write_text("x")
        (tmp_path / "registry").mkdir(exist_ok=True)  # not a per-model cache: stays
    fill()
    free_previous_model(tmp_path, state, "a", grouped=True)
    free_previous_model(tmp_path, state, "a", grouped=True)
    assert all((tmp_path / n / "weights.pth").exists() for n in MODEL_CACHE_DIRS)  # same model: kept
    free_previous_model(tmp_path, state, None, grouped=True)  # a test without a model changes nothing
    assert all((tmp_path / n).exists() for n in MODEL_CACHE_DIRS)
    free_previous_model(tmp_path, state, "b", grouped=True)
    assert not any((tmp_path / n).exists() for n in MODEL_CACHE_DIRS) and (tmp_path / "registry").exists()
    fill()
    free_previous_model(tmp_path, {"model": "b"}, "c", grouped=False)  # ungrouped: the model comes back later
    assert all((tmp_path / n).exists() for n in MODEL_CACHE_DIRS)
