"""The whole-zoo sweep, in resumable shards: ``python -m harness zoo``.

A sweep of every registered model takes about a day on a small machine, longer than any
one machine is kept, so it runs as N shards of whole models, one pytest process each, and
its progress lives in committed files, not on the machine:

- ``expected/zoo-plan.json`` (written when a zoo starts): which models each shard runs,
  balanced by the recorded durations. Written out, not recomputed, because a partition
  computed from durations and test counts changes as soon as either does.
- ``expected/status-all.json``: the outcome of every test of every finished shard. A shard
  is finished when every model of its plan is recorded there, so a fresh clone on another
  machine resumes where the last one stopped. Recording a shard replaces the entries of its
  models and keeps every other model's.

A finished shard is never rerun; an interrupted one reruns from its start. Each shard's
report stays in ``<out>/shard-III-of-NNN/`` on the machine that ran it, and the shards
finished here merge into ``<out>/results.json`` and the matrix. ``--record`` writes
status-all.json and merges the durations after each shard; ``--commit`` commits them with
the plan, so a long run lands shard by shard.

    python -m harness zoo --shards 100 [--only 3,4] [--record] [--commit] [-- pytest args]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import timm

from harness.models.selection import resolve_models
from harness.plugin.sharding import DEFAULT_DURATIONS, assign, read_durations
from harness.plugin.sweep_defaults import with_sweep_defaults
from harness.registry.paths import EXPECTED_DIR, ROOT
from harness.registry.test_ids import model_of
from harness.reports import expected_status
from harness.reports.results import RESULTS_FILE, Results, load
from harness.reports.sweep_reports import write_reports

STATE = "state.json"
ALL_STATUS = EXPECTED_DIR / "status-all.json"
PLAN = EXPECTED_DIR / "zoo-plan.json"
MESSAGE_CHARS = 400  # of each failure's message kept in status-all.json, for review on any machine


class ZooError(Exception):
    """A zoo that cannot be run or resumed as asked; the message says why."""


def registered_models() -> list[str]:
    """What ``--models all`` selects: the zoo plans exactly the sweep's selection."""
    return resolve_models("all")


def _versions() -> dict[str, str]:
    import torch
    return {"timm": timm.__version__, "torch": torch.__version__}


def make_plan(models: list[str], shards: int, durations: dict[str, float],
              fixed: list[list[str]] | None = None) -> dict:
    """Shards of whole models: ``fixed`` (shards already run, kept as they were) first, the
    other models balanced over the remaining shards by greedy LPT. A model without a
    recorded duration weighs the mean of the recorded ones."""
    fixed = [sorted(s) for s in fixed or []]
    taken = {m for s in fixed for m in s}
    rest = [m for m in models if m not in taken]
    known = [durations[m] for m in models if m in durations]
    mean = sum(known) / len(known) if known else 1.0
    if shards - len(fixed) < 1 and rest:
        raise ZooError(f"{len(fixed)} fixed shards leave none of the {shards} for {len(rest)} models")
    balanced = assign({m: durations.get(m, mean) for m in rest}, shards - len(fixed)) if rest else []
    parts = fixed + [sorted(s) for s in balanced]
    return {**_versions(), "shards": shards, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "note": "the models of each zoo shard, fixed when the zoo started (python -m harness zoo)",
            "plan": {str(i + 1): part for i, part in enumerate(parts)}}


def load_plan(path: Path, shards: int, durations: Path, models: list[str]) -> dict:
    """The committed plan, checked against this timm and shard count; created when absent."""
    if not path.exists():
        plan = make_plan(models, shards, read_durations(durations))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1) + "\n")
        return plan
    try:
        plan = json.loads(path.read_text())
        parts = {int(k): list(v) for k, v in plan["plan"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ZooError(f"{path} is not a zoo plan ({exc}): restore it from git or delete it to start a new zoo") \
            from None
    if plan.get("shards") != shards or sorted(parts) != list(range(1, shards + 1)):
        raise ZooError(f"{path} plans a zoo of {plan.get('shards')} shards, not {shards}: resume with "
                       f"--shards {plan.get('shards')}, or delete it to start a new zoo")
    if plan.get("timm") != timm.__version__:
        raise ZooError(f"{path} plans a zoo of timm {plan.get('timm')}, this is timm {timm.__version__}: "
                       f"delete it (and {ALL_STATUS.name}) to start a zoo of this release")
    planned = [m for part in parts.values() for m in part]
    if sorted(planned) != sorted(models):
        gone, new = sorted(set(planned) - set(models)), sorted(set(models) - set(planned))
        raise ZooError(f"{path} does not plan exactly the registered models (not registered: {gone[:5]}, "
                       f"unplanned: {new[:5]}): delete it to start a new zoo")
    return plan


def recorded_models(status_path: Path) -> set[str]:
    """Models with tests in the committed status file, if it is of this timm and torch."""
    data = _status_of_release(status_path, _versions())
    return {model_of(t) for t in data["status"]} if data else set()


def _status_of_release(status_path: Path, versions: dict) -> dict | None:
    """The status file if it records these timm and torch versions (else it is of another zoo)."""
    if not status_path.exists():
        return None
    data = expected_status.read(status_path)
    return data if all(data.get(k) == versions.get(k) for k in ("timm", "torch")) else None


def finished(plan: dict, state: dict, status_path: Path) -> set[int]:
    """Shards finished here (the local state) or anywhere (every model recorded)."""
    recorded = recorded_models(status_path)
    anywhere = {int(k) for k, part in plan["plan"].items() if part and set(part) <= recorded}
    return anywhere | {int(k) for k in state["done"]}


def read_state(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    path = out / STATE
    return json.loads(path.read_text()) if path.exists() else {"done": {}}


def save_state(out: Path, state: dict) -> None:
    tmp = out / f"{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / STATE)


def shard_dir(out: Path, index: int, shards: int) -> Path:
    return out / f"shard-{index:03d}-of-{shards:03d}"


def pytest_command(models: list[str], report: Path, workers: int, extra: list[str]) -> list[str]:
    """One shard: the sweep session's defaults (every family and the slow scope, crash
    isolation, timeouts, the memory guard), so expected/status-all.json holds every test
    `nox -s sweep` runs."""
    own = ["--models", ",".join(models), "--progress-every", "120", "--report-dir", str(report),
           f"--junitxml={report / 'junit.xml'}"]
    return [sys.executable, "-m", "pytest", "suites", "-n", str(workers), "--group-models", "-q", "-rfE",
            "-o", "junit_family=xunit2", *with_sweep_defaults(own, workers), *extra]


def run_shard(index: int, plan: dict, out: Path, workers: int, extra: list[str]) -> dict:
    """Run one shard; its summary for the state file. A shard whose pytest wrote no
    results.json (killed, usage error), or whose results leave out a planned model, is
    not finished."""
    shards, models = plan["shards"], plan["plan"][str(index)]
    report = shard_dir(out, index, shards)
    shutil.rmtree(report, ignore_errors=True)
    started = time.time()
    proc = subprocess.run(pytest_command(models, report, workers, extra), cwd=ROOT)
    wall = time.time() - started
    path = report / RESULTS_FILE
    if not path.exists():
        raise ZooError(f"shard {index}/{shards}: pytest exited {proc.returncode} without {path} "
                       f"(interrupted or a usage error); rerun to retry it")
    results = load(path)
    missing = sorted(set(models) - set(results.models()))
    if missing:
        raise ZooError(f"shard {index}/{shards}: no results for planned models {missing} in {path}")
    outcomes: dict[str, int] = {}
    for r in results.tests.values():
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {"wall_s": round(wall, 1), "exit": proc.returncode, "models": len(results.models()),
            "tests": len(results.tests), "outcomes": outcomes,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def merged(out: Path, state: dict, shards: int) -> Results:
    """The union of the results of the shards finished on this machine."""
    total = Results()
    for key in sorted(state["done"], key=int):
        part = load(shard_dir(out, int(key), shards) / RESULTS_FILE)
        total.tests.update(part.tests)
        total.meta = {**part.meta, **total.meta}
    total.meta.update(shard=None, shards_done=len(state["done"]), shards=shards, selection="all",
                      models=sorted({r.model for r in total.tests.values()}))
    return total


def record(results: Results, status_path: Path = ALL_STATUS, durations_path: Path | None = DEFAULT_DURATIONS,
           whole_models: bool = True) -> None:
    """Merge the results into expected/status-all.json (their models' entries replaced, every
    other model's kept, when the file is of the same timm and torch; with ``whole_models``
    False, only the tests the results hold: a rerun of some tests) and into the per-model
    durations. Failure messages are kept, cut short, so the zoo can be reviewed anywhere."""
    fresh = expected_status.record(results, "all")
    old = _status_of_release(status_path, results.meta) or {"status": {}, "messages": {}}
    ran = set(results.models())

    def replaced(test: str) -> bool:
        return model_of(test) in ran if whole_models else test in results.tests

    keep = {t: s for t, s in old["status"].items() if not replaced(t)}
    messages = {t: m for t, m in (old.get("messages") or {}).items() if not replaced(t)}
    messages.update({t: r.message[:MESSAGE_CHARS] for t, r in results.tests.items()
                     if r.outcome in ("failed", "known issue") and r.message})
    fresh.update(selection="all", status=dict(sorted({**keep, **fresh["status"]}.items())),
                 messages=dict(sorted(messages.items())))
    status_path.write_text(json.dumps(fresh, indent=1) + "\n")
    if durations_path is None:
        return
    durations = read_durations(durations_path)
    per_model: dict[str, float] = {}
    for r in results.tests.values():
        per_model[r.model] = per_model.get(r.model, 0.0) + r.duration
    durations.update({m: round(s, 2) for m, s in per_model.items()})
    durations_path.write_text(json.dumps({"note": "seconds per model (sum of its test durations), for --shard "
                                                  "balancing", "models": dict(sorted(durations.items()))},
                                         indent=0) + "\n")


def commit(message: str, paths: list[Path]) -> None:
    subprocess.run(["git", "add", *map(str, paths)], cwd=ROOT, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=ROOT)
    if staged.returncode:
        subprocess.run(["git", "commit", "-q", "-m", message], cwd=ROOT, check=True)


def main(argv: list[str], models: Callable[[], list[str]] = registered_models) -> int:
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    else:
        extra = []
    parser = argparse.ArgumentParser(prog="python -m harness zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=100, help="number of shards (default 100)")
    parser.add_argument("--only", default="", help="comma-separated shard numbers to run (default: every unfinished)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("HARNESS_WORKERS", "2")))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "zoo", help="shard reports of this machine")
    parser.add_argument("--plan", type=Path, default=PLAN, help="the shards' models (default expected/zoo-plan.json; "
                                                                "written when the zoo starts)")
    parser.add_argument("--durations", type=Path, default=DEFAULT_DURATIONS,
                        help="durations that balance a new plan; --record merges each shard's into it")
    parser.add_argument("--record", action="store_true",
                        help="after each shard, merge it into --status-file and --durations")
    parser.add_argument("--status-file", type=Path, default=ALL_STATUS, help="default expected/status-all.json")
    parser.add_argument("--commit", action="store_true", help="with --record: git commit them after each shard")
    parser.add_argument("--merge-only", action="store_true", help="run nothing: merge the shards finished here")
    parser.add_argument("--patch", type=Path, default=None, metavar="RESULTS",
                        help="run nothing: merge the tests of a rerun's results.json into --status-file, test by "
                             "test (after a fix or a new known issue)")
    args = parser.parse_args(argv)
    if args.patch is not None:
        patch = load(args.patch)  # a missing or foreign file: load's own clear error
        try:
            record(patch, args.status_file, None, whole_models=False)
        except ValueError as exc:  # a status file that is not one
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{args.status_file}: {len(patch.tests)} tests of {len(patch.models())} models replaced")
        return 0
    try:
        plan = load_plan(args.plan, args.shards, args.durations, models())
        state = read_state(args.out)
        done = finished(plan, state, args.status_file)
    except (ZooError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wanted = [int(s) for s in args.only.split(",") if s.strip()] or list(range(1, args.shards + 1))
    bad = [i for i in wanted if not 1 <= i <= args.shards]
    if bad:
        print(f"error: --only {bad}: shards are 1..{args.shards}", file=sys.stderr)
        return 2
    todo = [] if args.merge_only else [i for i in wanted if i not in done and plan["plan"][str(i)]]
    print(f"zoo (plan {args.plan}): {len(done)}/{args.shards} shards done; running {todo or 'none'}", flush=True)
    for index in todo:
        try:
            state["done"][str(index)] = run_shard(index, plan, args.out, args.workers, extra)
        except ZooError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        save_state(args.out, state)
        summary = state["done"][str(index)]
        print(f"zoo shard {index}/{args.shards}: {summary['models']} models, {summary['tests']} tests, "
              f"{summary['outcomes']}, {summary['wall_s']:.0f} s", flush=True)
        _merge(args, state, f"zoo: shard {index}/{args.shards} ({summary['models']} models, "
                            f"{summary['wall_s']:.0f} s)")
    if not todo:
        _merge(args, state, "zoo: merged shards")
    return 0


def _merge(args: argparse.Namespace, state: dict, message: str) -> None:
    if not state["done"]:
        return
    results = merged(args.out, state, args.shards)
    results.write(args.out / RESULTS_FILE)
    write_reports(results, args.out)
    if args.record:
        record(results, args.status_file, args.durations)
        if args.commit:
            commit(message, [args.status_file, args.durations, args.plan])
