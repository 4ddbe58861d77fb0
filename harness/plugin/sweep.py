"""pytest wiring for full sweeps and their reports. Generic over check families: it reads
each test's family marker and model (first part of the parameter id), never a list of
suites, so a new family joins the sweep, the matrix and the diffs as soon as it lands.

Options: ``--shard I/N`` (+ ``--durations-file``), ``--group-models`` (xdist keeps a
model's tests on one worker, so per-worker model caches hit), ``--max-rss-gb``,
``--progress-every``, ``--expected-status FILE``, ``--compare-report OLD``. With
``--report-dir`` a run writes ``results.json``, ``matrix.md`` and ``matrix.html``.
Crashed xdist workers (segfault, ``os._exit``, the memory watchdog) are reported as a
failure of the test they were running, with its model and family, and the model's
remaining tests go on on the replacement worker.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from harness.models import build
from harness.plugin import collection, memory_guard, parametrize, sharding
from harness.plugin.scheduling import ModelScheduling
from harness.registry.check_families import CHECK_FAMILIES
from harness.registry.test_ids import model_of
from harness.reports import diff as report_diff
from harness.reports import expected_status
from harness.reports.progress import Progress
from harness.reports.results import ResultsCollector, load
from harness.reports.sweep_reports import write_reports

_MAP_KEY = "harness_testmap"
_DESELECTED = pytest.StashKey[dict]()  # nodeid -> [model, family] of every deselected suite test


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness-sweep", "timm regression harness: sweeps and reports")
    group.addoption("--shard", default=None, metavar="I/N",
                    help="run shard I of N (1-based): whole models, balanced by recorded durations")
    group.addoption("--durations-file", default=str(sharding.DEFAULT_DURATIONS),
                    help="per-model seconds used to balance --shard (default expected/durations.json)")
    group.addoption("--group-models", action="store_true",
                    help="under xdist, send all tests of a model to one worker (shares its build)")
    group.addoption("--max-rss-gb", type=float, default=None,
                    help="fail a test whose peak process RSS exceeds this; skip models whose size implies more")
    group.addoption("--progress-every", type=float, default=0,
                    help="print a progress line (models done/total, ETA) every N seconds (0: off)")
    group.addoption("--expected-status", default=None, metavar="FILE",
                    help="fail the run on a new failure or an unexpected pass relative to FILE")
    group.addoption("--compare-report", default=None, metavar="RESULTS",
                    help="write diff.md against an earlier run's results.json (new failures, fixed)")


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("--shard")
    if spec:
        try:
            sharding.parse_shard(spec)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    expected = config.getoption("--expected-status")
    if expected and _is_controller(config):
        try:
            config.stash[_EXPECTED] = expected_status.read(expected)
        except (FileNotFoundError, ValueError) as exc:
            raise pytest.UsageError(str(exc)) from None
    limit = config.getoption("--max-rss-gb")
    if limit is not None and not memory_guard.supported():
        raise pytest.UsageError("--max-rss-gb needs Linux /proc/self/status VmHWM and a writable /proc/self/clear_refs")
    if limit is not None and not _is_controller(config):
        memory_guard.start_watchdog(limit)
    if _is_controller(config):
        config.pluginmanager.register(SweepController(config), "harness-sweep-controller")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(config), "harness-sweep-xdist")


_EXPECTED = pytest.StashKey[dict]()


def _family(item: pytest.Item) -> str | None:
    return next((m.name for m in item.iter_markers() if m.name in CHECK_FAMILIES), None)


def _model(item: pytest.Item) -> str:
    case = getattr(item, "callspec", None) and item.callspec.params.get("model_case")
    return getattr(case, "model", None) or model_of(item.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag suite tests with model and family (they reach the controller and JUnit XML),
    then keep only this shard's models."""
    suite_items = [i for i in items if _family(i)]
    for item in suite_items:
        item.user_properties += [("harness_model", _model(item)), ("harness_family", _family(item))]
    spec = config.getoption("--shard")
    if not spec:
        return
    counts = Counter(_model(i) for i in suite_items)
    keep = sharding.shard_models(counts, spec, sharding.read_durations(Path(config.getoption("--durations-file"))))
    drop = [i for i in suite_items if _model(i) not in keep]
    if drop:
        config.hook.pytest_deselected(items=drop)
        dropped = set(map(id, drop))
        items[:] = [i for i in items if id(i) not in dropped]


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember every deselected suite test (-m, -k, --shard, smoke scopes, empty
    parametrizations), so a test that is not run can be told from one that vanished."""
    if items:
        found = items[0].config.stash.setdefault(_DESELECTED, {})
        found.update({i.nodeid: [_model(i), _family(i)] for i in items if _family(i)})


def deselected(config: pytest.Config) -> dict[str, list]:
    return config.stash.get(_DESELECTED, {})


def _write_json(target: Path, data) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(target)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Workers write nodeid -> (model, family), so the controller can attribute a crash,
    and what they deselected, so it can tell a deselected test from a vanished one."""
    path = getattr(session.config, "workerinput", {}).get(_MAP_KEY)
    if path:
        worker = session.config.workerinput["workerid"]
        _write_json(Path(path) / f"{worker}.json",
                    {i.nodeid: [_model(i), _family(i)] for i in session.items if _family(i)})
        _write_json(Path(path) / f"{worker}.deselected", deselected(session.config))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    limit = item.config.getoption("--max-rss-gb")
    case = getattr(item, "callspec", None) and item.callspec.params.get("model_case")
    if limit is None or case is None or not getattr(case, "numeric", False):
        return
    need = memory_guard.estimate_gb(case.facts.param_count)
    if need > limit:
        pytest.skip(f"memory guard: {case.model} has {case.facts.param_count:,} parameters; its numeric checks "
                    f"need about {need:.1f} GB, over --max-rss-gb {limit:g}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    limit = item.config.getoption("--max-rss-gb")
    if limit is None:
        return (yield)
    memory_guard.reset_peak()
    result = yield  # a failing test raises here and keeps its own failure
    memory_guard.check_peak(limit, item.nodeid.split("::")[-1])
    return result


class SweepController:
    """Controller-side: results, progress, reports, expected status, report diff."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.collector = ResultsCollector(CHECK_FAMILIES)
        self.progress = None
        every = config.getoption("--progress-every")
        if every and every > 0:
            self.progress = Progress(every, self._write_line)
        self.lines: list[str] = []
        self.mismatch = None

    def _write_line(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(text)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.progress is not None and not self.config.pluginmanager.hasplugin("dsession"):
            self.progress.set_tests(i.nodeid for i in session.items if _family(i))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.collector.add(report)
        if self.progress is not None and result is not None and report.when in ("teardown", "???"):
            self.progress.finished(report.nodeid, result.outcome == "failed")

    def deselected(self) -> dict[str, list]:
        """Deselected suite tests: this process's, or under xdist the workers' (the same)."""
        xdist = self.config.pluginmanager.get_plugin("harness-sweep-xdist")
        return xdist.deselected() if xdist is not None and xdist.ran else deselected(self.config)

    def meta(self) -> dict:
        opt = self.config.getoption
        found = self.deselected()
        files = {t.split("::")[0] for t in [*self.collector.results.tests, *found]}
        return {"timm": build.timm_version(), "torch": torch.__version__, "selection": opt("--models"),
                "models": collection.selected_names(self.config), "files": sorted(files),
                "deselected": sorted(found),
                "exclude": opt("--exclude"), "max_params": opt("--max-params"), "device": opt("--device"),
                "shard": opt("--shard"), "markexpr": self.config.option.markexpr,
                "keyword": self.config.option.keyword,
                "workers": getattr(self.config.option, "numprocesses", None) or 0}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        results = self.collector.results
        if not results.tests:
            return
        results.meta.update(self.meta())
        summary = self.config.pluginmanager.get_plugin("harness-summary")
        if summary is not None:
            seen = {(r.model, r.family) for r in results.tests.values()}
            summary.not_applicable = parametrize.not_applicable(self.config, seen, {tuple(v) for v in
                                                                                  self.deselected().values()})
        report_dir = self.config.getoption("--report-dir")
        if report_dir:
            path = self.collector.finish(Path(report_dir))
            paths = [path, *write_reports(results, Path(report_dir))]
            self.lines.append("harness reports: " + ", ".join(map(str, paths)))
        compare_to = self.config.getoption("--compare-report")
        if compare_to:
            d = report_diff.diff_results(load(compare_to), results)
            out = Path(report_dir or ".") / "diff.md"
            out.write_text(report_diff.markdown(d))
            self.lines.append(f"report diff vs {compare_to}: {len(d.new_failures)} new failures since "
                              f"{d.old_label}, {len(d.fixed)} fixed; written to {out}")
        if _EXPECTED in self.config.stash:
            self.mismatch = expected_status.compare(self.config.stash[_EXPECTED]["status"], results)
            self.lines.append(self.mismatch.render(self.config.getoption("--expected-status")))
            if self.mismatch.failed:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            elif exitstatus == pytest.ExitCode.TESTS_FAILED:  # every failure is a recorded one
                session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.write_sep("=", "harness sweep")
            for line in self.lines:
                terminalreporter.write_line(line)


class XdistHooks:
    """Hooks that exist only with pytest-xdist: the model-grouping scheduler, the test
    map for crash attribution, crash reports, and progress totals."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.map_dir = Path(tempfile.mkdtemp(prefix="harness-testmap-"))
        self._map: dict[str, list] | None = None

    def pytest_configure_node(self, node) -> None:
        node.workerinput[_MAP_KEY] = str(self.map_dir)
        self.ran = True

    ran = False

    def deselected(self) -> dict[str, list]:
        found: dict[str, list] = {}
        for path in sorted(self.map_dir.glob("*.deselected")):
            try:
                found.update(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return found

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if not config.getoption("--group-models"):
            return None
        return ModelScheduling(config, log)

    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        controller = self.config.pluginmanager.get_plugin("harness-sweep-controller")
        if controller is not None and controller.progress is not None:
            controller.progress.set_tests(i for i in ids if "[" in i)

    def _lookup(self, nodeid: str) -> list | None:
        if self._map is None or nodeid not in self._map:
            self._map = {}
            for path in sorted(self.map_dir.glob("*.json")):
                try:
                    self._map.update(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue
        return self._map.get(nodeid)

    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        found = self._lookup(crashitem)
        model, family = found if found else (model_of(crashitem), None)
        report.user_properties = [("harness_model", model)] + ([("harness_family", family)] if family else [])
        if family:
            report.keywords = {family: 1}
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        report.longrepr = (f"worker {worker} crashed while running {crashitem}\n"
                           f"E   crash: the test process died (segfault, os._exit, abort, or killed for memory); "
                           f"model {model}: the run went on with a fresh worker")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for path in self.map_dir.glob("*"):
            path.unlink(missing_ok=True)
        try:
            os.rmdir(self.map_dir)
        except OSError:
            pass


# per-worker caches under the base temp folder that hold one model's files (suites/conftest.py,
# test_save_load.py, test_patch_size.py): a model's checkpoints, exported artifacts, layouts
MODEL_CACHE_DIRS = ("checkpoints", "save_load", "families")


def free_previous_model(basetemp: Path, state: dict, model: str | None, grouped: bool) -> None:
    """Under ``--group-models`` a worker runs one model's tests and then the next model's:
    when the model changes, the previous model's cached files go, so a sweep's disk use is
    one model's, not the zoo's (random48 filled 10 GB before this). Without grouping a
    model's tests come back later, so the caches stay (the fixtures re-create what is gone)."""
    if model is None or not grouped:
        return
    if state.get("model") not in (None, model):
        for name in MODEL_CACHE_DIRS:
            shutil.rmtree(basetemp / name, ignore_errors=True)
    state["model"] = model
