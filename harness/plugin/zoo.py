"""The whole-zoo sweep, in resumable shards: ``python -m harness zoo``.

A sweep of every registered model takes many hours on a small machine, so it runs as N
shards (``--shard I/N``, whole models, balanced by recorded durations), one pytest process
each, and a state file records every finished shard: a finished shard is never rerun,
an interrupted one is rerun from its start. The partition depends on the durations file,
so the runner freezes a copy of it when the zoo starts and refuses to resume with another
shard count or another frozen partition. After each shard (and at the end) the finished
shards are merged into ``<out>/results.json`` (+ matrix) and, with ``--record``, into
``expected/status-all.json`` and ``expected/durations.json``; ``--commit`` commits those
two files after each shard, so a long run lands shard by shard.

    python -m harness zoo --shards 40 [--only 3,4] [--record] [--commit] [-- pytest args]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.plugin.sharding import DEFAULT_DURATIONS, read_durations
from harness.registry.paths import EXPECTED_DIR, ROOT
from harness.reports import expected_status
from harness.reports.results import RESULTS_FILE, Results, load
from harness.reports.sweep_reports import write_reports

STATE = "state.json"
FROZEN_DURATIONS = "durations-frozen.json"
ALL_STATUS = EXPECTED_DIR / "status-all.json"


class ZooError(Exception):
    """A zoo directory that cannot be resumed as asked; the message says why."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "none"


def prepare(out: Path, shards: int, durations: Path) -> dict:
    """The state of the zoo in ``out``: created with a frozen copy of the durations, or
    read back (the shard count and the frozen partition must be the same)."""
    out.mkdir(parents=True, exist_ok=True)
    state_path, frozen = out / STATE, out / FROZEN_DURATIONS
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["shards"] != shards:
            raise ZooError(f"{out} holds a zoo of {state['shards']} shards, not {shards}: resume with "
                           f"--shards {state['shards']} or use another --out")
        if state["durations_sha"] != _sha(frozen):
            raise ZooError(f"{frozen} changed since the zoo started (its partition would change): restore it "
                           f"or start a new zoo in another --out")
        return state
    if durations.exists():
        shutil.copyfile(durations, frozen)
    else:
        frozen.write_text(json.dumps({"models": {}}) + "\n")
    state = {"shards": shards, "durations_sha": _sha(frozen), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "done": {}}
    save_state(out, state)
    return state


def save_state(out: Path, state: dict) -> None:
    tmp = out / f"{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / STATE)


def shard_dir(out: Path, index: int, shards: int) -> Path:
    return out / f"shard-{index:03d}-of-{shards:03d}"


def pytest_command(index: int, shards: int, out: Path, workers: int, extra: list[str]) -> list[str]:
    """One shard: the sweep session's defaults (every family and the slow scope, crash
    isolation, timeouts), so expected/status-all.json holds every test `nox -s sweep` runs."""
    report = shard_dir(out, index, shards)
    return [sys.executable, "-m", "pytest", "suites", "--models", "all", "--slow", "--shard", f"{index}/{shards}",
            "--durations-file", str(out / FROZEN_DURATIONS), "-n", str(workers), "--group-models", "-q", "-rfE",
            "--timeout", "900", "--max-worker-restart", "200", "--progress-every", "120",
            "--report-dir", str(report), f"--junitxml={report / 'junit.xml'}", "-o", "junit_family=xunit2", *extra]


def run_shard(index: int, shards: int, out: Path, workers: int, extra: list[str]) -> dict:
    """Run one shard; its summary for the state file. A shard whose pytest did not write
    results.json for this shard (killed, usage error) is not finished."""
    report = shard_dir(out, index, shards)
    shutil.rmtree(report, ignore_errors=True)
    started = time.time()
    proc = subprocess.run(pytest_command(index, shards, out, workers, extra), cwd=ROOT)
    wall = time.time() - started
    path = report / RESULTS_FILE
    if not path.exists():
        raise ZooError(f"shard {index}/{shards}: pytest exited {proc.returncode} without {path} "
                       f"(interrupted or a usage error); rerun to retry it")
    results = load(path)
    if results.meta.get("shard") != f"{index}/{shards}":
        raise ZooError(f"{path} is for shard {results.meta.get('shard')}, not {index}/{shards}")
    outcomes: dict[str, int] = {}
    for r in results.tests.values():
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {"wall_s": round(wall, 1), "exit": proc.returncode, "models": len(results.models()),
            "tests": len(results.tests), "outcomes": outcomes,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def merged(out: Path, state: dict) -> Results:
    """The union of the finished shards' results."""
    total = Results()
    for key in sorted(state["done"], key=int):
        part = load(shard_dir(out, int(key), state["shards"]) / RESULTS_FILE)
        total.tests.update(part.tests)
        total.meta = {**part.meta, **total.meta}
    total.meta.update(shard=None, shards_done=len(state["done"]), shards=state["shards"],
                      models=sorted({r.model for r in total.tests.values()}))
    return total


def record(results: Results, status_path: Path = ALL_STATUS, durations_path: Path = DEFAULT_DURATIONS) -> None:
    """expected/status-all.json (every test id of the finished shards) and the per-model
    durations (merged into the existing file)."""
    status_path.write_text(json.dumps(expected_status.record(results, "all"), indent=1) + "\n")
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


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    else:
        extra = []
    parser = argparse.ArgumentParser(prog="python -m harness zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=40, help="number of shards (default 40)")
    parser.add_argument("--only", default="", help="comma-separated shard numbers to run (default: every unfinished)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("HARNESS_WORKERS", "2")))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "zoo", help="zoo directory (state, shards)")
    parser.add_argument("--durations", type=Path, default=DEFAULT_DURATIONS,
                        help="durations that balance the shards (frozen into --out when the zoo starts)")
    parser.add_argument("--record", action="store_true",
                        help="after each shard, write --status-file and merge the finished shards' durations "
                             "into --durations")
    parser.add_argument("--status-file", type=Path, default=ALL_STATUS, help="default expected/status-all.json")
    parser.add_argument("--commit", action="store_true", help="with --record: git commit them after each shard")
    parser.add_argument("--merge-only", action="store_true", help="run nothing: merge the finished shards")
    args = parser.parse_args(argv)
    try:
        state = prepare(args.out, args.shards, args.durations)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wanted = [int(s) for s in args.only.split(",") if s.strip()] or list(range(1, args.shards + 1))
    bad = [i for i in wanted if not 1 <= i <= args.shards]
    if bad:
        print(f"error: --only {bad}: shards are 1..{args.shards}", file=sys.stderr)
        return 2
    todo = [] if args.merge_only else [i for i in wanted if str(i) not in state["done"]]
    print(f"zoo {args.out}: {len(state['done'])}/{args.shards} shards done; running {todo or 'none'}", flush=True)
    for index in todo:
        try:
            state["done"][str(index)] = run_shard(index, args.shards, args.out, args.workers, extra)
        except ZooError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        save_state(args.out, state)
        done = state["done"][str(index)]
        print(f"zoo shard {index}/{args.shards}: {done['models']} models, {done['tests']} tests, "
              f"{done['outcomes']}, {done['wall_s']:.0f} s", flush=True)
        _merge(args, state, f"zoo: shard {index}/{args.shards} ({done['models']} models, {done['wall_s']:.0f} s)")
    if not todo:
        _merge(args, state, "zoo: merged shards")
    return 0


def _merge(args: argparse.Namespace, state: dict, message: str) -> None:
    if not state["done"]:
        return
    results = merged(args.out, state)
    results.write(args.out / RESULTS_FILE)
    write_reports(results, args.out)
    if args.record:
        record(results, args.status_file, args.durations)
        if args.commit:
            commit(message, [args.status_file, args.durations])
