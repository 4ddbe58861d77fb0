"""The whole-zoo runner: shards run once each (a finished shard is never rerun), the
partition is frozen when the zoo starts, the finished shards merge into one results
file, the expected status and the durations."""
from __future__ import annotations

import json

from harness.plugin import zoo
from harness.reports.results import load

TOYS = ["--", "-p", "tests.toys.toy_models", "--models", "toy_ok,toy_nan_output,toy_strict_head", "-m", "create",
        "-k", "default", "-p", "no:cacheprovider"]


def test_zoo_runs_each_shard_once_and_merges(tmp_path, monkeypatch):
    out, durations, status = tmp_path / "zoo", tmp_path / "durations.json", tmp_path / "status-all.json"
    durations.write_text(json.dumps({"models": {"toy_ok": 5.0, "toy_nan_output": 4.0, "toy_strict_head": 3.0}}))
    args = ["--shards", "2", "--workers", "0", "--out", str(out), "--durations", str(durations), "--record",
            "--status-file", str(status)]
    runs = []
    real = zoo.run_shard
    monkeypatch.setattr(zoo, "run_shard", lambda *a: runs.append(a[0]) or real(*a))
    assert zoo.main(args + ["--only", "1"] + TOYS) == 0
    assert zoo.main(args + TOYS) == 0  # shard 1 is done: only shard 2 runs
    assert zoo.main(args + TOYS) == 0  # both done: nothing runs
    assert runs == [1, 2]
    state = json.loads((out / "state.json").read_text())
    assert sorted(state["done"]) == ["1", "2"]
    results = load(out / "results.json")
    assert {r.model for r in results.tests.values()} == {"toy_ok", "toy_nan_output", "toy_strict_head"}
    recorded = json.loads(status.read_text())["status"]
    assert recorded["suites/test_create.py::test_create_variant[toy_nan_output-scratch-default]"] == "failed"
    assert recorded["suites/test_create.py::test_create_variant[toy_ok-scratch-default]"] == "passed"
    assert set(json.loads(durations.read_text())["models"]) == {"toy_ok", "toy_nan_output", "toy_strict_head"}
    assert (out / "matrix.html").exists()


def test_zoo_refuses_another_partition(tmp_path, capsys):
    out, durations = tmp_path / "zoo", tmp_path / "durations.json"
    durations.write_text(json.dumps({"models": {"toy_ok": 1.0}}))
    assert zoo.main(["--shards", "3", "--out", str(out), "--durations", str(durations), "--merge-only"]) == 0
    assert zoo.main(["--shards", "4", "--out", str(out), "--durations", str(durations), "--merge-only"]) == 2
    assert "holds a zoo of 3 shards" in capsys.readouterr().err
    (out / zoo.FROZEN_DURATIONS).write_text("{}")
    assert zoo.main(["--shards", "3", "--out", str(out), "--durations", str(durations), "--merge-only"]) == 2
    assert "changed since the zoo started" in capsys.readouterr().err
