"""The whole-zoo runner: the shards' models are planned once and committed, a shard runs
once (finished here, or recorded in status-all.json by any machine), recording a shard
keeps every other model's status, and a plan that does not fit this timm is refused."""
from __future__ import annotations

import json

import pytest
import timm

from harness.plugin import zoo
from harness.reports.results import Results, TestResult, load

TOY_MODELS = ["toy_nan_output", "toy_ok", "toy_strict_head"]
TOYS = ["--", "-p", "tests.toys.toy_models", "-m", "create", "-k", "default", "-p", "no:cacheprovider"]
NAN_DEFAULT = "suites/test_create.py::test_create_variant[toy_nan_output-scratch-default]"
OK_DEFAULT = "suites/test_create.py::test_create_variant[toy_ok-scratch-default]"


def _args(tmp_path, out="zoo", shards=2):
    return ["--shards", str(shards), "--workers", "0", "--out", str(tmp_path / out),
            "--plan", str(tmp_path / "plan.json"), "--durations", str(tmp_path / "durations.json"),
            "--record", "--status-file", str(tmp_path / "status-all.json")]


def _counting(monkeypatch) -> list[int]:
    runs: list[int] = []
    real = zoo.run_shard
    monkeypatch.setattr(zoo, "run_shard", lambda *a: runs.append(a[0]) or real(*a))
    return runs


def _toys():
    return list(TOY_MODELS)


def test_zoo_runs_each_shard_once_and_merges(tmp_path, monkeypatch):
    (tmp_path / "durations.json").write_text(json.dumps({"models": {"toy_ok": 5.0, "toy_nan_output": 4.0,
                                                                    "toy_strict_head": 3.0}}))
    runs = _counting(monkeypatch)
    args = _args(tmp_path)
    assert zoo.main(args + ["--only", "1"] + TOYS, models=_toys) == 0
    assert zoo.main(args + TOYS, models=_toys) == 0  # shard 1 is done: only shard 2 runs
    assert zoo.main(args + TOYS, models=_toys) == 0  # both done: nothing runs
    assert runs == [1, 2]
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["plan"] == {"1": ["toy_ok"], "2": ["toy_nan_output", "toy_strict_head"]}  # LPT by duration
    assert sorted(json.loads((tmp_path / "zoo" / "state.json").read_text())["done"]) == ["1", "2"]
    assert set(load(tmp_path / "zoo" / "results.json").models()) == set(TOY_MODELS)
    recorded = json.loads((tmp_path / "status-all.json").read_text())
    assert recorded["status"][NAN_DEFAULT] == "failed" and recorded["status"][OK_DEFAULT] == "passed"
    assert recorded["messages"][NAN_DEFAULT]  # the failure can be reviewed without the shard's report
    assert set(json.loads((tmp_path / "durations.json").read_text())["models"]) == set(TOY_MODELS)
    assert (tmp_path / "zoo" / "matrix.html").exists()


def test_a_fresh_machine_resumes_from_the_committed_plan_and_status(tmp_path, monkeypatch):
    """Another --out (a new machine: no state, no shard reports) with the committed files."""
    runs = _counting(monkeypatch)
    assert zoo.main(_args(tmp_path, "first") + ["--only", "1"] + TOYS, models=_toys) == 0
    one = json.loads((tmp_path / "plan.json").read_text())["plan"]["1"]
    assert zoo.main(_args(tmp_path, "second") + TOYS, models=_toys) == 0
    assert runs == [1, 2]  # shard 1 is recorded in status-all.json: the new machine skips it
    status = json.loads((tmp_path / "status-all.json").read_text())["status"]
    assert {t.split("[")[1].split("-")[0] for t in status} == set(TOY_MODELS)  # shard 1's entries kept
    assert not set(one) & set(load(tmp_path / "second" / "results.json").models())


def _results(model: str, outcome: str, timm_version: str) -> Results:
    import torch
    test = f"suites/test_create.py::test_create_variant[{model}-scratch-default]"
    return Results({test: TestResult(test, model, "create", outcome, "why" if outcome == "failed" else "")},
                   {"timm": timm_version, "torch": torch.__version__})


def test_record_replaces_the_models_it_ran_and_keeps_the_others(tmp_path):
    status, durations = tmp_path / "status-all.json", tmp_path / "durations.json"
    zoo.record(_results("toy_a", "failed", timm.__version__), status, durations)
    zoo.record(_results("toy_b", "passed", timm.__version__), status, durations)
    zoo.record(_results("toy_a", "passed", timm.__version__), status, durations)  # rerun: a's entry replaced
    data = json.loads(status.read_text())
    assert sorted(data["status"].values()) == ["passed", "passed"] and data["messages"] == {}
    other = _results("toy_b", "failed", timm.__version__)
    other.tests = {t.replace("default", "pretrained"): r for t, r in other.tests.items()}
    zoo.record(other, status, None, whole_models=False)  # a rerun of one test: toy_b's other test is kept
    data = json.loads(status.read_text())
    assert sorted(data["status"].values()) == ["failed", "passed", "passed"] and len(data["messages"]) == 1
    zoo.record(_results("toy_c", "passed", "0.0.1"), status, durations)  # another release: a new file
    assert [t.split("[")[1].split("-")[0] for t in json.loads(status.read_text())["status"]] == ["toy_c"]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p, "plans a zoo of 2 shards, not 3"),
    (lambda p: {**p, "timm": "0.0.1"}, "plans a zoo of timm 0.0.1"),
    (lambda p: {**p, "plan": {"1": ["toy_ok"], "2": ["toy_gone"]}}, "does not plan exactly the registered"),
    (lambda p: {**p, "plan": "corrupt"}, "is not a zoo plan"),
])
def test_a_plan_that_does_not_fit_is_refused(tmp_path, capsys, edit, message):
    assert zoo.main(_args(tmp_path) + ["--merge-only"], models=_toys) == 0
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(edit(json.loads(plan_path.read_text()))))
    shards = 3 if "not 3" in message else 2
    assert zoo.main(_args(tmp_path, shards=shards) + ["--merge-only"], models=_toys) == 2
    assert message in capsys.readouterr().err


def test_a_shard_runs_with_every_sweep_default_and_its_own_models(tmp_path):
    """The zoo records what `nox -s sweep` runs: the slow scope, timeouts, restarts, the memory
    guard (one table, harness/plugin/sweep_defaults.py, for both)."""
    from harness.plugin.sweep_defaults import sweep_defaults
    command = zoo.pytest_command(["toy_a", "toy_b"], tmp_path / "shard", 2, [])
    for option in sweep_defaults(2):
        assert any(a == option or a.startswith(option + "=") for a in command), option
    assert "--slow" in command and command[command.index("--models") + 1] == "toy_a,toy_b"
    assert command.count("--models") == 1 and command[command.index("--report-dir") + 1] == str(tmp_path / "shard")
