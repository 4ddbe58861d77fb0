"""The throughput regression check: flags a planted 1.5x slowdown, does not flag an A/A
comparison (same timm on both sides), reads clearly on a missing baseline; the benchmark
suite writes pytest-benchmark JSON and timm benchmark.py CSV; the CUDA path skips cleanly
without a GPU. Toys (forwards that sleep): tests/toys/toy_bench_models.py."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from harness.checks import benchmark_compare as bench_compare
from harness.checks.benchmark_compare import Side, WorkerArgs, judge
from tests.helpers import run_suites
from tests.toys import toy_bench_models


def _noisy(rng, n, scale, sigma=0.1):
    """Per-round medians from a machine whose load drifts: shared drift x own noise."""
    return list(scale * np.exp(rng.normal(0, sigma, n)))


def test_statistics_flag_a_planted_slowdown_and_not_a_noisy_a_a_comparison():
    rng = np.random.default_rng(1)
    false_alarms = caught = 0
    for _ in range(200):
        drift = np.exp(rng.normal(0, 0.3, 6))          # load changes between rounds
        base = np.array(_noisy(rng, 6, 0.02)) * drift
        same = np.array(_noisy(rng, 6, 0.02)) * drift
        slow = np.array(_noisy(rng, 6, 0.03)) * drift
        false_alarms += judge("m", list(base), list(same), paired=True).flagged
        caught += judge("m", list(base), list(slow), paired=True).flagged
    assert false_alarms == 0 and caught >= 190, (false_alarms, caught)


def test_statistics_need_both_size_and_significance():
    base = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert not judge("m", base, [1.05] * 6, paired=True).flagged            # clear but under 10%
    assert not judge("m", base, [1.12] * 6, paired=True, threshold=0.15).flagged
    assert not judge("m", base, [2.0, 0.9, 2.0, 0.9, 2.0, 0.9], paired=True).flagged  # big but unclear
    verdict = judge("m", base, [1.5] * 6, paired=True)
    assert verdict.flagged and verdict.p_value == pytest.approx(1 / 64) and verdict.slowdown == pytest.approx(1.5)
    assert judge("m", [1.0, 1.1, 0.9, 1.0, 1.05], [1.5, 1.6, 1.45, 1.55, 1.5], paired=False).flagged


def test_interleaved_processes_flag_the_planted_slowdown_only():
    """One run, five rounds: toy_bench_slow sleeps 1.5x on the candidate side (planted),
    toy_bench is the same on both sides (A/A). The measured ratio of the slow toy is under
    1.5 because the forward's own compute and the machine's load add to both sides."""
    args = WorkerArgs(("toy_bench", "toy_bench_slow"), warmup=1, iters=3, imports=("tests.toys.toy_bench_models",))
    verdicts = bench_compare.compare_sides(Side("baseline"), Side("candidate", env={toy_bench_models.ENV: "1.5"}),
                                           args, rounds=5, log=lambda *_: None)
    by_model = {v.model: v for v in verdicts}
    assert by_model["toy_bench_slow"].flagged and 1.2 < by_model["toy_bench_slow"].slowdown < 1.7, by_model
    assert not by_model["toy_bench"].flagged, by_model


def test_missing_stored_baseline_is_a_clear_error(tmp_path, capsys):
    assert bench_compare.main(["--stored", str(tmp_path), "--models", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert f"no stored benchmark baseline for this device: {tmp_path}/cpu.json does not exist" in err
    assert "--save-baseline --models resnet18" in err
    with pytest.raises(SystemExit):
        bench_compare.main(["--baseline-timm", str(tmp_path), "--models", "resnet18"])  # no timm there


def test_benchmark_suite_writes_json_and_timm_csv(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = run_suites(["-p", "tests.toys.toy_bench_models", "-p", "no:xdist", "-m", "benchmark", "--models", "toy_bench",
                      "--bench-rounds", "3", "--bench-warmup", "1", "--bench-csv", str(out / "bench.csv"),
                      f"--benchmark-json={out / 'bench.json'}"], tmp_path)
    assert run.outcomes == {"test_benchmark[toy_bench]": "passed"}, run.output
    (row,) = list(csv.DictReader((out / "bench.csv").open()))
    assert list(row) == ["model", "infer_img_size", "infer_samples_per_sec", "infer_step_time",
                         "infer_batch_size", "param_count"]
    assert row["model"] == "toy_bench" and float(row["infer_step_time"]) >= 1000 * toy_bench_models.BASE_S
    bench = json.loads((out / "bench.json").read_text())["benchmarks"][0]
    assert bench["stats"]["rounds"] == 3 and bench["extra_info"]["infer_batch_size"] == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_benchmark_skips_cleanly_without_a_gpu(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_bench_models", "-p", "no:xdist", "-m", "benchmark", "--models", "toy_bench",
                      "--device", "cuda"], tmp_path)
    assert run.outcomes == {"test_benchmark[toy_bench]": "skipped"}, run.output
    assert "CUDA is not available" in run.messages["test_benchmark[toy_bench]"]
