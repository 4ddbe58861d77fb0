"""``python -m harness bench-sweep``: what the default run costs per model and check family
on a named sample, beside timm's own ``tests/test_models.py -m "base or cfg"`` on the
same models (and ``forward or backward``, where the release gives those tests markers of their
own: timm 1.0.31's ``base`` no longer holds them), in one run, as a ratio.

Both sides run as a user runs them (pytest, ``-n`` workers, a warm facts cache for the
harness; timm's test file from the source distribution of the installed release), one
after the other, so take the figure on a quiet machine: the load average before and
after is printed with it. Per-family seconds are the sums of test durations (setup, call
and teardown) per model; a model's shared build is paid by its first test, so a family
that usually runs first carries it. Wall time per model is the whole run's wall time
over the number of models: collection and start-up included, as the user waits for it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.registry.paths import CACHE_DIR, ROOT
from harness.registry.samples import SAMPLES
from harness.reports.results import RESULTS_FILE, load


def timm_tests_dir(version: str) -> Path:
    """timm's tests/ for a release: from a checkout next to the importable package, else
    from its source distribution on the package index (cached under .cache/timm-sdist)."""
    import timm

    checkout = Path(timm.__file__).resolve().parent.parent / "tests"
    if (checkout / "test_models.py").is_file():
        return checkout
    root = CACHE_DIR / "timm-sdist" / version
    tests = root / f"timm-{version}" / "tests"
    if not (tests / "test_models.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"timm=={version}", "-d", str(root)], check=True)
        archive = next(root.glob(f"timm-{version}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    return tests


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_harness(models: list[str], workers: int, out: Path, extra: list[str]) -> dict:
    report = out / "harness"
    cmd = [sys.executable, "-m", "pytest", "suites", "--models", ",".join(models), "-n", str(workers),
           "--group-models", "-q", "--report-dir", str(report), *extra]
    started = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - started
    path = report / RESULTS_FILE
    if not path.exists():
        raise SystemExit(f"error: the harness run wrote no {path} (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    side = harness_side(path, wall, proc.returncode, "--slow" in extra)
    (out / HARNESS_SIDE).write_text(json.dumps(side, indent=1) + "\n")
    return side


HARNESS_SIDE = "harness-side.json"  # what --reuse-harness reads back


def harness_side(path: Path, wall: float, exit_code: int, slow: bool) -> dict:
    """Per family and model, the summed test seconds of a harness run's results.json."""
    per: dict[str, dict[str, float]] = {}
    slow_families: dict[str, dict[str, float]] = {}
    for r in load(path).tests.values():
        side = slow_families if r.slow else per
        side.setdefault(r.family, {}).setdefault(r.model, 0.0)
        side[r.family][r.model] += r.duration
    return {"wall_s": wall, "exit": exit_code, "families": per, "slow_families": slow_families, "slow": slow}


# timm's per-model tests: "base or cfg" until the forward and backward tests got markers of
# their own (timm 1.0.31 declares forward/backward; its "base" is then a few test_* models).
PER_MODEL_MARKERS = ("base", "cfg", "forward", "backward")


def timm_markexpr(tests: Path) -> str:
    """``-m`` for timm's per-model tests in this release: base and cfg, plus forward and
    backward where the release declares them (pyproject.toml, pytest.ini or setup.cfg)."""
    declared = " ".join(f.read_text(errors="ignore") for f in (tests.parent / "pyproject.toml", tests / "pytest.ini",
                                                                tests.parent / "setup.cfg", tests / "conftest.py")
                        if f.is_file())
    names = [m for m in PER_MODEL_MARKERS if m in ("base", "cfg") or re.search(rf"[\"'\s]{m}\s*:", declared)]
    return " or ".join(names)


def _models_named(test_id: str, models: set[str]) -> set[str]:
    """The models of ``models`` a timm test id's parameters name ('test_x[1-resnet26d]'; cfg
    tests are parametrized by pretrained tag: 'resnet26d.bt_in1k')."""
    params = test_id.rsplit("[", 1)[-1].rstrip("]").split("-") if "[" in test_id else []
    return {p.split(".", 1)[0] for p in params} & models


def _pytest(tests: Path) -> list[str]:
    # ids relative to tests/ whatever rootdir the release's config would pick (its pyproject.toml)
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--rootdir={tests}"]


def timm_node_ids(tests: Path, models: list[str], markexpr: str | None = None) -> list[str]:
    """timm's per-model test ids (timm_markexpr) whose parameters name a model of ``models``."""
    markexpr = timm_markexpr(tests) if markexpr is None else markexpr
    proc = subprocess.run([*_pytest(tests), "--collect-only", "-q", "test_models.py", "-m", markexpr],
                          cwd=tests, capture_output=True, text=True)
    wanted = set(models)
    ids = []
    for line in proc.stdout.splitlines():
        if "::" in line and _models_named(line.strip(), wanted):
            ids.append(line.strip())
    if not ids:
        raise SystemExit(f"error: no test of timm's {tests / 'test_models.py'} (-m {markexpr!r}) names these models "
                         f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return ids


def run_timm(models: list[str], workers: int, out: Path, version: str) -> dict:
    tests = timm_tests_dir(version)
    markexpr = timm_markexpr(tests)
    ids = timm_node_ids(tests, models, markexpr)
    junit = out / "timm-junit.xml"
    cmd = [*_pytest(tests), "-q", "-n", str(workers), f"--junitxml={junit}", *ids]
    started = time.time()
    proc = subprocess.run(cmd, cwd=tests, capture_output=True, text=True)
    wall = time.time() - started
    per_model: dict[str, float] = {}
    cases = list(ET.parse(junit).getroot().iter("testcase")) if junit.exists() else []
    for case in cases:
        for m in _models_named(case.get("name", ""), set(models)):
            per_model[m] = per_model.get(m, 0.0) + float(case.get("time", 0.0))
    ran = len(cases)
    if ran < len(ids):
        raise SystemExit(f"error: timm's tests ran {ran} of {len(ids)} selected ids (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}")
    return {"wall_s": wall, "exit": proc.returncode, "tests": len(ids), "per_model": per_model, "dir": str(tests),
            "markexpr": markexpr}


def _seconds(per: dict[str, float], models: list[str]) -> tuple[float, float]:
    values = [per.get(m, 0.0) for m in models]
    return statistics.mean(values), statistics.median(values)


def summary(models: list[str], harness: dict, timm_side: dict | None, load: tuple[str, str]) -> tuple[str, dict]:
    """The table: per check family the default scope's mean and median seconds per model and,
    for a --slow run, the slow scope's mean beside it (the figure before the slow scope left
    the default is the sum of the two)."""
    n = len(models)
    slow = harness.get("slow_families", {})
    table = Table(title=f"bench-sweep: {n} models (load average before {load[0]}, after {load[1]})")
    columns = ["check family", "mean s/model", "median s/model", "models"] + (["slow scope mean s/model"] if slow else [])
    for col in columns:
        table.add_column(col, justify="right" if col != "check family" else "left")
    figures: dict = {"models": n, "families": {}, "slow_families": {}}
    families = sorted(set(harness["families"]) | set(slow),
                      key=lambda f: -sum(harness["families"].get(f, {}).values()) - sum(slow.get(f, {}).values()))
    for family in families:
        per = harness["families"].get(family, {})
        mean, median = _seconds(per, models)
        figures["families"][family] = {"mean": mean, "median": median, "models": len(per)}
        row = [family, f"{mean:.2f}", f"{median:.2f}", str(len(per))]
        if slow:
            slow_mean = _seconds(slow.get(family, {}), models)[0]
            figures["slow_families"][family] = {"mean": slow_mean}
            row.append(f"{slow_mean:.2f}" if family in slow else "")
        table.add_row(*row)
    default_s = sum(sum(v.values()) for v in harness["families"].values())
    slow_s = sum(sum(v.values()) for v in slow.values())
    figures["test_s_per_model"] = default_s / n
    figures["slow_test_s_per_model"] = slow_s / n
    figures["harness_wall_per_model"] = harness["wall_s"] / n
    table.add_row("test seconds / model", f"{default_s / n:.2f}", "", "", *([f"{slow_s / n:.2f}"] if slow else []))
    table.add_row("harness: wall / model" + (" (--slow run)" if harness.get("slow") else ""),
                  f"{figures['harness_wall_per_model']:.2f}", "", str(n), style="bold")
    if harness.get("slow") and default_s + slow_s:
        figures["default_wall_per_model_estimate"] = figures["harness_wall_per_model"] * default_s / (default_s + slow_s)
        table.add_row("default scope: wall / model (share of test time)",
                      f"{figures['default_wall_per_model_estimate']:.2f}", "", "", style="bold")
    if timm_side is not None:
        figures["timm_wall_per_model"] = timm_side["wall_s"] / n
        figures["ratio"] = figures["harness_wall_per_model"] / figures["timm_wall_per_model"]
        table.add_row("timm per-model tests: wall / model", f"{figures['timm_wall_per_model']:.2f}", "",
                      f"{timm_side['tests']} tests", style="bold")
        table.add_row("ratio harness / timm", f"{figures['ratio']:.2f}", "", "", style="bold")
        if "default_wall_per_model_estimate" in figures:
            figures["default_ratio_estimate"] = figures["default_wall_per_model_estimate"] / figures["timm_wall_per_model"]
            table.add_row("ratio default scope / timm", f"{figures['default_ratio_estimate']:.2f}", "", "", style="bold")
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text(), figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness bench-sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", default="random48", choices=sorted(SAMPLES), help="named model sample")
    parser.add_argument("--models", default=None, help="comma-separated model names instead of --sample")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("HARNESS_WORKERS", "2")))
    parser.add_argument("--skip-timm", action="store_true", help="only the harness side")
    parser.add_argument("--slow", action="store_true",
                        help="run the harness with --slow and show the slow scope's seconds beside the default's")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-sweep")
    parser.add_argument("--reuse-harness", action="store_true",
                        help=f"take the harness side from OUT/{HARNESS_SIDE} of an earlier run (same models) "
                             f"and run only timm's tests")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest args for the harness side")
    args = parser.parse_args(argv)
    import timm

    models = args.models.split(",") if args.models else list(SAMPLES[args.sample])
    missing = sorted(set(models) - set(timm.list_models()))
    if missing:
        print(f"error: not registered in timm {timm.__version__}: {', '.join(missing)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    before = _loadavg()
    if args.reuse_harness:
        stored = args.out / HARNESS_SIDE
        if not stored.is_file():
            print(f"error: --reuse-harness: no {stored} (run once without it)", file=sys.stderr)
            return 2
        harness = json.loads(stored.read_text())
        missing = set(models) - {m for fam in harness["families"].values() for m in fam}
        if missing:
            print(f"error: --reuse-harness: {stored} has no test of {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    else:
        harness = run_harness(models, args.workers, args.out, [*(["--slow"] if args.slow else []), *args.pytest_args])
    timm_side = None if args.skip_timm else run_timm(models, args.workers, args.out, timm.__version__)
    text, figures = summary(models, harness, timm_side, (before, _loadavg()))
    print(text)
    figures.update(timm=timm.__version__, sample=args.sample if not args.models else "custom", models_list=models)
    (args.out / "bench-sweep.json").write_text(json.dumps(figures, indent=1) + "\n")
    (args.out / "bench-sweep.txt").write_text(text)
    return 0
