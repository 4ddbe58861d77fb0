"""pytest wiring for the suites: the harness's options, the check-family markers, and the
controller-side reporters (summary, golden-update summary, benchmark CSV)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.models.selection import DEFAULT_MAX_PARAMS
from harness.registry.check_families import CHECK_FAMILIES, CHECK_FAMILY_DOCS
from harness.registry.paths import GRAPH_BREAKS_FILE
from harness.reports import benchmark_csv, golden_update, notes
from harness.reports.summary import RunSummary


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "timm regression harness")
    group.addoption("--models", default="smoke",
                    help="comma-separated fnmatch patterns over registered models, 'smoke' (default) or 'all'")
    group.addoption("--slow", action="store_true",
                    help="also run the slow scope (dynamo ONNX, torch.compile, benchmarks, further patch_size "
                         "tags: harness/registry/scopes.py); the sweep and the nightly pass it")
    group.addoption("--exclude", default="", help="comma-separated fnmatch patterns removed from the selection")
    group.addoption("--max-params", type=int, default=DEFAULT_MAX_PARAMS,
                    help=f"models above N parameters get only structural checks on the meta device "
                         f"(default {DEFAULT_MAX_PARAMS:,})")
    group.addoption("--device", default="cpu", choices=("cpu", "cuda"), help="where numeric checks run")
    group.addoption("--golden-dir", default="golden", help="where golden outputs live")
    group.addoption("--update-golden", action="store_true", help="record golden outputs instead of comparing")
    group.addoption("--accept-golden-changes", action="store_true",
                    help="with --update-golden: also overwrite records whose values CHANGED (after review)")
    group.addoption("--compat-dir", default=None, help="artifacts exported by other timm versions")
    group.addoption("--ignore-known-issues", action="store_true",
                    help="run as if the known-issues registry were empty: every failure shows")
    group.addoption("--report-dir", default=None, help="write summary.md (and what later reports add) here")
    add_golden_benchmark_options(group)
    add_transform_options(group)


def add_transform_options(group) -> None:
    """Options of the transforms family (recorded torch.compile graph breaks)."""
    group.addoption("--graph-breaks-file", default=str(GRAPH_BREAKS_FILE),
                    help="recorded torch.compile graph-break counts per model (default expected/graph_breaks.json)")
    group.addoption("--update-graph-breaks", action="store_true",
                    help="record the graph-break counts of the compile_eager cases instead of comparing")


def add_golden_benchmark_options(group) -> None:
    """Options of the golden and benchmark families (precision, throughput settings)."""
    group.addoption("--golden-precision", default="float32", choices=("float32", "bf16", "fp16"),
                    help="golden comparison precision: float32 (TF32 off on CUDA) or bf16/fp16 autocast")
    group.addoption("--golden-missing-only", action="store_true",
                    help="with --update-golden: record only models without a golden file and compare the others "
                         "(a recording of the zoo resumes where it stopped)")
    group.addoption("--bench-batch-size", type=int, default=None,
                    help="benchmark batch size (default 256 on cuda, 8 on cpu)")
    group.addoption("--bench-img-size", type=int, default=None,
                    help="benchmark input side (default: the model's pretrained input size)")
    group.addoption("--bench-amp", default="none", choices=("none", "bf16", "fp16"), help="benchmark under autocast")
    group.addoption("--bench-channels-last", action="store_true", help="benchmark in channels_last memory format")
    group.addoption("--bench-warmup", type=int, default=3, help="benchmark warm-up steps (not timed)")
    group.addoption("--bench-rounds", type=int, default=10, help="benchmark timed steps per model")
    group.addoption("--bench-csv", default=None,
                    help="write timm benchmark.py style CSV here (default: <report-dir>/benchmark.csv)")


def pytest_configure(config: pytest.Config) -> None:
    for name in CHECK_FAMILIES:
        config.addinivalue_line("markers", f"{name}: the {name} check family ({CHECK_FAMILY_DOCS[name]})")
    config.addinivalue_line("markers", "slow: a harness self-test that runs real timm releases or fingerprints "
                                       "(nox -s historic; nox -s tests deselects it)")
    config.addinivalue_line("markers", "cases(name): the named parametrizer (harness.plugin.parametrize) "
                                       "that generates this suite test's model cases")
    if not hasattr(config, "workerinput"):  # the controller (or a plain run) reports
        report_dir = config.getoption("--report-dir")
        config.pluginmanager.register(RunSummary(CHECK_FAMILIES, Path(report_dir) if report_dir else None),
                                      "harness-summary")
        golden_update.register(config)
        benchmark_csv.register(config)
        notes.register(config)


@dataclass(frozen=True)
class HarnessOptions:
    models: str
    exclude: str
    max_params: int
    device: str
    golden_dir: Path
    update_golden: bool
    accept_golden_changes: bool
    compat_dir: Path | None
    ignore_known_issues: bool

    @staticmethod
    def from_config(config: pytest.Config) -> "HarnessOptions":
        opt = config.getoption
        compat = opt("--compat-dir")
        return HarnessOptions(opt("--models"), opt("--exclude"), opt("--max-params"), opt("--device"),
                              Path(opt("--golden-dir")), opt("--update-golden"), opt("--accept-golden-changes"),
                              Path(compat) if compat else None, opt("--ignore-known-issues"))
