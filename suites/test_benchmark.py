"""benchmark: inference throughput per model through pytest-benchmark (warm-up rounds,
CUDA synchronized, torch.inference_mode, optional autocast and channels_last; see
harness/checks/benchmark.py). Results: pytest-benchmark's JSON (--benchmark-json) and a CSV with
timm benchmark.py's columns (--bench-csv, or <report-dir>/benchmark.csv). pytest-benchmark
times nothing under xdist (or with --benchmark-disable): the test is then skipped with that
reason, never reported as a pass that measured nothing; run with -n 0 (-p no:xdist)."""
import json

import pytest

from harness.checks.benchmark import BenchSettings, make_step

pytestmark = [pytest.mark.benchmark, pytest.mark.cases("models")]


def test_benchmark(model_case, device, harness_options, benchmark, request):
    if device == "meta":
        facts = model_case.facts
        why = (f"{facts.param_count:,} parameters > --max-params {harness_options.max_params:,}"
               if facts.param_count is not None else f"not buildable on the meta device ({facts.meta_error})")
        pytest.skip(f"throughput is measured only for numerically checked models: {why}")
    if benchmark.disabled:
        pytest.skip("pytest-benchmark times nothing here (it is disabled under xdist and by --benchmark-disable): "
                    "run the benchmark suite with -p no:xdist (or -n 0)")
    settings = BenchSettings.from_config(request.config, device)
    step = make_step(model_case.model, settings, model_case.facts.input_size)
    benchmark.group = f"{device}-b{settings.batch_size}-{settings.amp}{'-cl' if settings.channels_last else ''}"
    benchmark.pedantic(step, rounds=settings.rounds, warmup_rounds=settings.warmup, iterations=1)
    assert benchmark.stats is not None, "pytest-benchmark recorded no timing"
    row = step.row(benchmark.stats.stats.median)
    benchmark.extra_info.update(row)
    request.node.user_properties.append(("benchmark_row", json.dumps(row)))
