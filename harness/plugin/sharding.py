"""``--shard I/N``: split a run's models into N duration-balanced shards, so CI runners or
GPU nodes each take one. Whole models are assigned (a model's tests stay together, so
its build is shared), by greedy longest-processing-time over per-model durations from
a committed file (``expected/durations.json``, refreshed from a run's results.json);
a model without a recorded duration is estimated from its number of tests. The
assignment depends only on the selected models, their test counts and the durations
file, so every shard computes the same partition and the shards' union is the full run.

    python -m harness durations reports/results.json [--out expected/durations.json]
"""
from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path
from typing import Mapping

from harness.registry.paths import EXPECTED_DIR
from harness.reports.results import load as load_results

DEFAULT_DURATIONS = EXPECTED_DIR / "durations.json"
DEFAULT_TEST_SECONDS = 1.0  # estimate per test when neither the model nor any other has a record


def parse_shard(spec: str) -> tuple[int, int]:
    """'I/N' (1-based) -> (I, N); a clear error otherwise."""
    try:
        index, count = (int(p) for p in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected I/N, e.g. 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard {spec!r}: need 1 <= I <= N")
    return index, count


def read_durations(path: Path | None) -> dict[str, float]:
    if path is None or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text())
    return {k: float(v) for k, v in data.get("models", data).items() if isinstance(v, (int, float))}


def estimates(tests_per_model: Mapping[str, int], durations: Mapping[str, float]) -> dict[str, float]:
    """Seconds per model: recorded, else its test count times the mean recorded seconds per test."""
    known = [(durations[m], n) for m, n in tests_per_model.items() if m in durations and n]
    per_test = (sum(d for d, _ in known) / sum(n for _, n in known)) if known else DEFAULT_TEST_SECONDS
    return {m: durations.get(m, n * per_test) for m, n in tests_per_model.items()}


def assign(weights: Mapping[str, float], count: int) -> list[list[str]]:
    """Greedy LPT: heaviest model first onto the least-loaded shard (ties: lowest index);
    models of equal weight in name order. Deterministic."""
    shards: list[list[str]] = [[] for _ in range(count)]
    heap = [(0.0, i) for i in range(count)]
    for model in sorted(weights, key=lambda m: (-weights[m], m)):
        load, i = heapq.heappop(heap)
        shards[i].append(model)
        heapq.heappush(heap, (load + weights[model], i))
    return shards


def shard_models(tests_per_model: Mapping[str, int], spec: str, durations: Mapping[str, float]) -> set[str]:
    index, count = parse_shard(spec)
    return set(assign(estimates(tests_per_model, durations), count)[index - 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness durations",
                                     description="merge per-model durations from results.json files into the "
                                                 "durations file that balances --shard")
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", default=str(DEFAULT_DURATIONS))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    merged = read_durations(out)
    for path in args.results:
        per_model: dict[str, float] = {}
        for r in load_results(path).tests.values():
            per_model[r.model] = per_model.get(r.model, 0.0) + r.duration
        merged.update({m: round(s, 2) for m, s in per_model.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"note": "seconds per model (sum of its test durations), for --shard balancing",
                               "models": dict(sorted(merged.items()))}, indent=0) + "\n")
    print(f"wrote {out}: {len(merged)} models")
    return 0
