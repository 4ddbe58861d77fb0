"""Throughput regression check that survives a noisy machine: the candidate timm against
a baseline timm on the same machine in one run, their rounds interleaved in separate
processes (the baseline through ``PYTHONPATH=<old timm dir>``), and a model flagged only
when it is slower by more than a threshold (default 10%) *and* that is statistically
clear: the test's null hypothesis is "at most threshold slower", not "equal", so noise
alone rarely crosses it.

Each round starts one process per side (alternating which goes first) that builds every
model, warms up, and reports the median step time of each; so a round yields one paired
observation per model, taken close together in time. Load that comes and goes (other
jobs, thermal state) hits both sides of a round alike, and the test is paired: an exact
sign-flip permutation test on the per-round log ratios less log(1 + threshold) (numpy
only; scipy is not needed). Slowdown is the
median of those ratios; a bootstrap interval is reported with it.

Stored baselines (``golden/benchmarks/<device>.json``, one per GPU model) hold per-round
medians; comparing against one uses an unpaired exact permutation test instead.

CLI::

    python -m harness bench-compare --baseline-timm /work/oldtimm/1.0.30 --models resnet18,convnext_atto
    python -m harness bench-compare --stored golden/benchmarks --models ... [--save-baseline]
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.checks.benchmark import BenchSettings, make_step, median_step, time_step
from harness.models import build
from harness.models.facts import facts_for
from harness.models.selection import SelectionError, resolve_models
from harness.registry.paths import ROOT

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
DEFAULT_ROUNDS = 6   # 2**6 sign patterns: the smallest attainable p is 1/64


class BaselineError(Exception):
    """A baseline that is missing or unusable; the message says which and what to do."""


# ---------------------------------------------------------------- statistics

def paired_permutation_p(log_ratios: list[float]) -> float:
    """One-sided exact sign-flip test: P(mean of randomly signed log ratios >= observed)
    under H0 (candidate and baseline exchangeable within each round)."""
    d = np.asarray(log_ratios, dtype=float)
    if len(d) == 0:
        return 1.0
    observed = d.mean()
    if len(d) <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(20000, len(d)))
    means = (signs * np.abs(d)).mean(axis=1)
    return float((means >= observed - 1e-12).mean())


def unpaired_permutation_p(baseline: list[float], candidate: list[float]) -> float:
    """One-sided permutation test on the difference of mean log times (exact up to 20,000
    splits, sampled beyond)."""
    a, b = np.log(np.asarray(baseline, float)), np.log(np.asarray(candidate, float))
    pooled, n = np.concatenate([a, b]), len(b)
    observed = b.mean() - a.mean()
    total = math.comb(len(pooled), n)
    if total <= 20000:
        splits = itertools.combinations(range(len(pooled)), n)
        diffs = []
        for idx in splits:
            mask = np.zeros(len(pooled), bool)
            mask[list(idx)] = True
            diffs.append(pooled[mask].mean() - pooled[~mask].mean())
        diffs = np.array(diffs)
    else:
        rng = np.random.default_rng(0)
        diffs = np.array([(lambda p: p[:n].mean() - p[n:].mean())(rng.permutation(pooled)) for _ in range(20000)])
    return float((diffs >= observed - 1e-12).mean())


def bootstrap_ci(values: list[float], level: float = 0.9, n: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values``."""
    v = np.asarray(values, float)
    rng = np.random.default_rng(0)
    medians = np.median(v[rng.integers(0, len(v), size=(n, len(v)))], axis=1)
    return float(np.quantile(medians, (1 - level) / 2)), float(np.quantile(medians, (1 + level) / 2))


@dataclass(frozen=True)
class ModelVerdict:
    model: str
    baseline_s: float          # median step time
    candidate_s: float
    slowdown: float            # candidate / baseline (1.5 = 50% slower)
    ci: tuple[float, float]    # bootstrap 90% interval of the slowdown
    p_value: float
    flagged: bool

    def line(self) -> str:
        mark = "SLOWER" if self.flagged else "ok"
        return (f"{mark:6} {self.model}: {self.slowdown:.3f}x (90% CI {self.ci[0]:.3f}-{self.ci[1]:.3f}, "
                f"p={self.p_value:.3g}), baseline {1e3 * self.baseline_s:.2f} ms, "
                f"candidate {1e3 * self.candidate_s:.2f} ms per step")


def judge(model: str, baseline: list[float], candidate: list[float], paired: bool,
          threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> ModelVerdict:
    """Flag when the data reject "the slowdown is at most the threshold" at level alpha:
    the permutation test runs on log(candidate) - log(1 + threshold) against log(baseline),
    so an A/A pair needs noise beyond the threshold in every round to be flagged, while a
    real 1.5x slowdown is flagged from a handful of rounds."""
    shift = math.log1p(threshold)
    if paired:
        logs = [math.log(c / b) for b, c in zip(baseline, candidate)]
        slowdown = math.exp(float(np.median(logs)))
        ci = tuple(math.exp(x) for x in bootstrap_ci(logs))
        p = paired_permutation_p([d - shift for d in logs])
    else:
        slowdown = float(np.median(candidate) / np.median(baseline))
        p = unpaired_permutation_p(baseline, [c / (1 + threshold) for c in candidate])
        lo_c, hi_c = bootstrap_ci(candidate)
        lo_b, hi_b = bootstrap_ci(baseline)
        ci = (lo_c / hi_b, hi_c / lo_b)
    flagged = slowdown > 1 + threshold and p < alpha
    return ModelVerdict(model, float(np.median(baseline)), float(np.median(candidate)), slowdown, ci, p, flagged)


# ---------------------------------------------------------------- measuring

def _log(message: str) -> None:
    print(message, flush=True)  # rounds are minutes apart: show progress as it happens


@dataclass(frozen=True)
class Side:
    """One timm to measure: its directory goes first on PYTHONPATH (None: the importable
    timm), plus extra environment (tests plant slowdowns through it)."""

    name: str
    timm_dir: str | None = None
    env: dict = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerArgs:
    models: tuple[str, ...]
    device: str = "cpu"
    batch_size: int = 2
    img_size: int | None = None
    amp: str = "none"
    channels_last: bool = False
    warmup: int = 2
    iters: int = 5
    imports: tuple[str, ...] = ()   # modules to import first (test plugins registering toys)


def _worker_env(side: Side) -> dict:
    env = dict(os.environ)
    paths = ([side.timm_dir] if side.timm_dir else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(side.env)
    return env


def run_round(side: Side, args: WorkerArgs, timeout: int = 1800) -> dict:
    """One process: {'timm': version, 'medians': {model: seconds}}."""
    cmd = [sys.executable, "-m", "harness", "bench-compare", "--worker", json.dumps(asdict(args))]
    proc = subprocess.run(cmd, cwd=ROOT, env=_worker_env(side), capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker for {side.name} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def worker_main(spec: str) -> None:
    """Runs in the measured process: builds each model and prints its median step time."""
    args = WorkerArgs(**json.loads(spec))
    for module in args.imports:
        importlib.import_module(module)

    settings = BenchSettings(args.device, args.batch_size, args.img_size, args.amp, args.channels_last,
                             args.warmup, args.iters)
    medians = {}
    for model in args.models:
        step = make_step(model, settings, facts_for(model).input_size)
        medians[model] = median_step(time_step(step, args.warmup, args.iters))
        del step
    print(json.dumps({"timm": build.timm_version(), "medians": medians}), flush=True)


def measure_interleaved(baseline: Side, candidate: Side, args: WorkerArgs, rounds: int = DEFAULT_ROUNDS,
                        log=_log) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, str]]:
    """Per-model lists of per-round medians for both sides; sides alternate going first."""
    times = {baseline.name: {m: [] for m in args.models}, candidate.name: {m: [] for m in args.models}}
    versions = {}
    for r in range(rounds):
        order = (baseline, candidate) if r % 2 == 0 else (candidate, baseline)
        for side in order:
            result = run_round(side, args)
            versions[side.name] = result["timm"]
            for m, t in result["medians"].items():
                times[side.name][m].append(t)
        log(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{m} {times[baseline.name][m][-1] * 1e3:.1f}/{times[candidate.name][m][-1] * 1e3:.1f} ms"
            for m in args.models))
    return times[baseline.name], times[candidate.name], versions


def compare_sides(baseline: Side, candidate: Side, args: WorkerArgs, rounds: int = DEFAULT_ROUNDS,
                  threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA, log=_log
                  ) -> list[ModelVerdict]:
    base, cand, _ = measure_interleaved(baseline, candidate, args, rounds, log)
    return [judge(m, base[m], cand[m], paired=True, threshold=threshold, alpha=alpha) for m in args.models]


# ---------------------------------------------------------------- stored baselines

def device_slug(device: str) -> str:
    """'nvidia-h100-80gb-hbm3' for CUDA, 'cpu' otherwise: one stored baseline per GPU model."""
    if device == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")
    return "cpu"


def baseline_path(stored_dir: Path, device: str) -> Path:
    return Path(stored_dir) / f"{device_slug(device)}.json"


def load_baseline(path: Path, models: tuple[str, ...]) -> dict:
    if not path.exists():
        others = sorted(p.name for p in path.parent.glob("*.json")) if path.parent.exists() else []
        raise BaselineError(f"no stored benchmark baseline for this device: {path} does not exist "
                            f"(stored: {', '.join(others) or 'none'}). Record one on this machine with the "
                            f"baseline timm importable:\n  python -m harness bench-compare --stored {path.parent} "
                            f"--save-baseline --models {','.join(models)}")
    try:
        data = json.loads(path.read_text())
        stored = data["models"]
    except Exception as exc:  # noqa: BLE001
        raise BaselineError(f"stored benchmark baseline {path} is unreadable ({type(exc).__name__}: {exc})") from None
    missing = [m for m in models if m not in stored]
    if missing:
        raise BaselineError(f"stored benchmark baseline {path} has no figures for {', '.join(missing)}; "
                            f"re-record it with --save-baseline")
    return data


def measure_rounds(side: Side, args: WorkerArgs, rounds: int, log=_log) -> tuple[dict[str, list[float]], str]:
    times, version = {m: [] for m in args.models}, ""
    for r in range(rounds):
        result = run_round(side, args)
        version = result["timm"]
        for m, t in result["medians"].items():
            times[m].append(t)
        log(f"round {r + 1}/{rounds} done")
    return times, version


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness bench-compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", help="comma-separated fnmatch patterns, 'smoke' or 'all' (as the suites)")
    parser.add_argument("--baseline-timm", help="directory holding the baseline timm package (put on PYTHONPATH)")
    parser.add_argument("--candidate-timm", default=None, help="candidate timm directory (default: importable timm)")
    parser.add_argument("--stored", default=None, help="compare against / save a stored baseline in this folder "
                                                       "(e.g. golden/benchmarks) instead of --baseline-timm")
    parser.add_argument("--save-baseline", action="store_true", help="with --stored: record the baseline")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="slowdown to flag (0.10 = 10%%)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 on cuda, 2 on cpu")
    parser.add_argument("--img-size", type=int, default=None)
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed steps per round and model")
    parser.add_argument("--import", dest="imports", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help="write the verdicts here")
    ns = parser.parse_args(argv)
    if ns.worker:
        worker_main(ns.worker)
        return 0
    if not ns.models:
        parser.error("--models is required")
    if not ns.stored and not ns.baseline_timm:
        parser.error("give --baseline-timm DIR (interleaved comparison) or --stored DIR (stored baseline)")
    if ns.baseline_timm and not (Path(ns.baseline_timm) / "timm" / "__init__.py").exists():
        parser.error(f"--baseline-timm {ns.baseline_timm}: no timm package there (expected timm/__init__.py)")
    try:
        models = tuple(resolve_models(ns.models))
    except SelectionError as exc:
        parser.error(str(exc))
    args = WorkerArgs(models, ns.device, ns.batch_size or (256 if ns.device == "cuda" else 2), ns.img_size, ns.amp,
                      ns.channels_last, ns.warmup, ns.iters, tuple(ns.imports))
    candidate = Side("candidate", ns.candidate_timm)
    if ns.stored:
        path = baseline_path(Path(ns.stored), ns.device)
        if ns.save_baseline:
            times, version = measure_rounds(candidate, args, ns.rounds)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"device": device_slug(ns.device), "timm": version,
                                        "settings": asdict(args), "models": times}, indent=1, sort_keys=True) + "\n")
            print(f"stored baseline (timm {version}) written to {path}")
            return 0
        try:
            data = load_baseline(path, models)
        except BaselineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        times, _ = measure_rounds(candidate, args, ns.rounds)
        verdicts = [judge(m, data["models"][m], times[m], paired=False, threshold=ns.threshold, alpha=ns.alpha)
                    for m in models]
    else:
        verdicts = compare_sides(Side("baseline", ns.baseline_timm), candidate, args, ns.rounds, ns.threshold,
                                 ns.alpha)
    for v in verdicts:
        print(v.line())
    flagged = [v for v in verdicts if v.flagged]
    print(f"{len(flagged)} of {len(verdicts)} models slower by more than {ns.threshold:.0%} (p < {ns.alpha})")
    if ns.json:
        Path(ns.json).write_text(json.dumps([asdict(v) for v in verdicts], indent=1) + "\n")
    return 1 if flagged else 0
