"""Fingerprints of the importable timm, written by a subprocess per timm tree (the caller
sets PYTHONPATH; harness.checks.fingerprint_store runs it), so no process ever imports
two timm versions:

- ``python -m harness fingerprint registry --out FILE``: every registered model's entry
  point, the pretrained cfg of each of its tags, and the arguments its entry point passes
  to ``build_model_with_cfg`` (the "entry point kwargs": ``model_cfg`` dataclasses, feature
  cfgs, filter functions, block args), recorded without building the model.
- ``python -m harness fingerprint trace --out DIR --models-file F``: per model, the timm
  functions each step of each check family executes (harness.checks.exercise), traced
  with harness.models.tracing, one JSON line per model appended to DIR/trace-<pid>.jsonl
  (resumable: a model already there is skipped by the caller).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import functools
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

for _category in (FutureWarning, DeprecationWarning, UserWarning):  # old timm on new torch is noisy
    warnings.filterwarnings("ignore", category=_category)

import timm  # noqa: E402
import timm.models  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from harness.checks import exercise  # noqa: E402
from harness.models import meta_ops  # noqa: E402
from harness.models import build, facts  # noqa: E402
from harness.models.checkpoint_sources import pretrained_tags, tag_families  # noqa: E402
from harness.models.selection import DEFAULT_MAX_PARAMS  # noqa: E402
from harness.models.source_index import SourceIndex  # noqa: E402
from harness.models.tracing import Recorder  # noqa: E402
from harness.registry.model_families import family_for  # noqa: E402

FORMAT = 1
# pretrained cfg fields timm never reads (documentation only): a change there is no reason
# to re-check a model
DOC_ONLY_CFG_KEYS = ("license", "paper_ids", "paper_name", "origin_url", "notes", "description")
MODEL_TIMEOUT_S = 600  # one model's steps; a model that takes longer is recorded as incomplete


def timm_root() -> Path:
    """The folder that holds the importable timm package."""
    return Path(timm.__file__).resolve().parent.parent


# ---------------------------------------------------------------------- describing values

def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def describe(value: Any, depth: int = 0) -> Any:
    """A JSON value that is equal for equal arguments in two processes (and two releases):
    functions and classes by qualified name, partials and dataclasses by their parts,
    module instances by class, nothing that prints a memory address."""
    if depth > 12:
        return "<deep>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"enum:{_qualified(type(value))}.{value.name}"
    if isinstance(value, (list, tuple)):
        return [describe(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((describe(v, depth + 1) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, functools.partial):
        return {"partial": describe(value.func, depth + 1), "args": describe(value.args, depth + 1),
                "keywords": describe(value.keywords, depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": _qualified(type(value)),
                **{f.name: describe(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}}
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"obj:{_qualified(value)}"
    if isinstance(value, nn.Module):
        return f"instance:{_qualified(type(value))}"
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    text = repr(value)
    return f"instance:{_qualified(type(value))}" if " at 0x" in text else f"{_qualified(type(value))}:{text}"


def pretrained_cfgs(name: str) -> dict[str, Any]:
    """tag -> the tag's pretrained cfg (documentation-only fields dropped)."""
    from timm.models import _registry
    tags = list(getattr(_registry, "_model_with_tags", {}).get(name, [])) or [name]
    out = {}
    for full in tags:
        cfg = timm.models.get_pretrained_cfg(full)
        data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg)) if cfg is not None else {}
        out[full.partition(".")[2]] = describe({k: v for k, v in data.items() if k not in DOC_ONLY_CFG_KEYS})
    return out


class _Stop(Exception):
    """Raised where an entry point touches the model it asked build_model_with_cfg for."""


class _Built:
    """What the recording build_model_with_cfg returns: a placeholder that stops the entry
    point at its first use (the arguments are recorded by then)."""

    def __init__(self, number: int):
        object.__setattr__(self, "number", number)

    def __getattr__(self, name):
        raise _Stop(name)

    def __setattr__(self, name, value):
        raise _Stop(name)


def build_calls(name: str) -> dict[str, Any]:
    """The arguments of each build_model_with_cfg call ``create_model(name)`` makes, with
    build_model_with_cfg replaced by a recorder in every timm module that holds it."""
    from timm.models import _builder
    original = _builder.build_model_with_cfg
    signature = __import__("inspect").signature(original)
    calls: list = []

    def recorder(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs).arguments
        calls.append(describe({k: (f"built#{v.number}" if isinstance(v, _Built) else v) for k, v in bound.items()}))
        return _Built(len(calls))

    patched = [(m, k) for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("timm")
               for k, v in list(vars(m).items()) if v is original]
    for module, key in patched:
        setattr(module, key, recorder)
    error = ""
    try:
        with torch.device("meta"):
            timm.create_model(name)
    except _Stop:
        pass
    except Exception as exc:  # noqa: BLE001 - recorded: the same error on both sides is no change
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        for module, key in patched:
            setattr(module, key, original)
    return {"calls": calls, "error": error}


def registry(names: list[str] | None = None) -> dict[str, Any]:
    """Every registered name, and the records of ``names`` (default: all)."""
    registered = timm.list_models()
    models = {}
    for name in registered if names is None else names:
        entry = timm.models.model_entrypoint(name)
        models[name] = {"entrypoint": _qualified(entry), "cfgs": pretrained_cfgs(name), "build": build_calls(name)}
    return {"format": FORMAT, "timm": timm.__version__, "torch": torch.__version__, "names": registered,
            "models": models}


# ---------------------------------------------------------------------- tracing models

def _conversion_ids(name: str, index: SourceIndex, calls: list) -> set[str]:
    """Checkpoint conversions the trace cannot reach: a tag whose checkpoint family is not
    timm's own layout (OpenCLIP, .npz, DINOv2...) is converted by branches of the filter
    function (or a custom load) that a timm-layout file never enters. The patch_size family
    loads those layouts, so its fingerprint gets every function the filter names, statically."""
    families = {f for tag in pretrained_tags(name) for f in tag_families(tag).families}
    if families <= {"timm", "third_party_hub"}:
        return set()
    out: set[str] = set()
    for call in calls:
        filter_fn = call.get("pretrained_filter_fn") if isinstance(call, dict) else None
        if isinstance(filter_fn, str) and filter_fn.startswith("obj:"):
            out |= index.referenced_functions(filter_fn[4:])
        cls = call.get("model_cls") if isinstance(call, dict) else None
        if isinstance(cls, str) and cls.startswith("obj:"):
            out |= index.referenced_functions(cls[4:] + ".load_pretrained")
    return {fid for fid in out if index.function_hash(fid) is not None}


class _Timeout(BaseException):
    """A BaseException, like KeyboardInterrupt: the code it interrupts (timm's, and the
    harness probes, e.g. facts.gather) catches Exception broadly, and once swallowed the
    alarm has fired, so the model's next step ran unbounded (a constructor that hangs
    hung the worker for good)."""


@contextlib.contextmanager
def _deadline(seconds: int):
    def expire(signum, frame):
        raise _Timeout(f"model took longer than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _run_steps(subject: exercise.Subject, steps: dict, index: SourceIndex, recorder: Recorder, device: str,
               numeric: bool, record: dict) -> dict[str, set[str]]:
    """Each step under the recorder on ``device``; a step that raises on meta runs again on
    the CPU when the checks run this model numerically (its errors are recorded)."""
    per_step: dict[str, set[str]] = {}
    for sid, step in steps.items():
        recorder.clear()
        try:
            with recorder:
                step(subject, device)
        except _Timeout:
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the CPU, else recorded
            if device != "meta" or not numeric:
                record["errors"][sid] = _error(exc)
            else:
                recorder.clear()
                record["cpu_steps"].append(sid)
                try:
                    with recorder:
                        step(subject, "cpu")
                except _Timeout:
                    raise
                except Exception as exc2:  # noqa: BLE001 - the check meets the same error
                    record["errors"][sid] = _error(exc2)
        per_step[sid] = recorder.ids(index)
    return per_step


def trace_model(name: str, index: SourceIndex, root: Path, timeout: int = MODEL_TIMEOUT_S) -> dict[str, Any]:
    """One model's fingerprint: for each step, the sorted ids of the functions it ran.

    Steps run on the meta device. When a function that ran there looks at the meta device
    (SourceIndex.meta_sensitive: its path may differ from the CPU's) and the checks run the
    model numerically, every step runs again on the CPU and that trace is kept."""
    start = time.perf_counter()
    record: dict[str, Any] = {"model": name, "format": FORMAT, "ids": [], "steps": {}, "errors": {},
                              "cpu_steps": [], "device": "meta", "incomplete": ""}
    per_step: dict[str, set[str]] = {}
    try:
        with _deadline(timeout), meta_ops.fast_meta_ops(), exercise.scratch_dir() as tmp:
            model_facts = facts.gather(name)
            numeric = model_facts.param_count is not None and model_facts.param_count <= DEFAULT_MAX_PARAMS
            subject = exercise.Subject(name, model_facts, family_for(name, model_facts.module), Path(tmp))
            with contextlib.suppress(Exception):
                subject.model("meta")  # the default build, shared by the steps (untraced: create steps trace it)
            recorder = Recorder(root)
            steps = exercise.steps_for(subject)
            per_step = _run_steps(subject, steps, index, recorder, "meta", numeric, record)
            sensitive = sorted(f for f in set().union(*per_step.values()) if index.meta_sensitive(f))
            if sensitive and numeric:
                record.update(device="cpu", meta_sensitive=sensitive, errors={}, cpu_steps=[])
                per_step = _run_steps(subject, steps, index, recorder, "cpu", numeric, record)
            conversions = _conversion_ids(name, index, build_calls(name)["calls"])
            if conversions:
                per_step["patch_size:checkpoint_conversions"] = conversions
    except _Timeout as exc:
        record["incomplete"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - the model is then affected whatever changed
        record["incomplete"] = _error(exc)
    ids = sorted(set().union(*per_step.values())) if per_step else []
    position = {fid: i for i, fid in enumerate(ids)}
    record["ids"] = ids
    record["steps"] = {sid: sorted(position[f] for f in fs) for sid, fs in per_step.items()}
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def _trace_main(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = timm_root()
    index = SourceIndex(root)
    names = [n for n in Path(args.models_file).read_text().split() if n]
    current = out / f".current-{os.getpid()}"
    torch.set_num_threads(1)
    with open(out / f"trace-{os.getpid()}.jsonl", "a") as sink:
        for name in names:
            current.write_text(name)
            record = trace_model(name, index, root, args.timeout)
            sink.write(json.dumps(record, sort_keys=True) + "\n")
            sink.flush()
            print(f"traced {name} in {record['seconds']} s", file=sys.stderr, flush=True)
    current.unlink(missing_ok=True)
    return 0


def _registry_main(args) -> int:
    names = Path(args.models_file).read_text().split() if args.models_file else None
    data = registry(names)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(out)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness fingerprint",
                                     description="fingerprints of the importable timm (run by `harness affected`)")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("registry", help="entry points, pretrained cfgs and build kwargs of every model, as JSON")
    reg.add_argument("--out", required=True)
    reg.add_argument("--models-file", help="file with the model names, whitespace-separated (default: all)")
    trace = sub.add_parser("trace", help="the functions each check family's steps execute, per model (JSON lines)")
    trace.add_argument("--out", required=True, help="folder for trace-<pid>.jsonl")
    trace.add_argument("--models-file", required=True, help="file with the model names, whitespace-separated")
    trace.add_argument("--timeout", type=int, default=MODEL_TIMEOUT_S, help="seconds per model")
    args = parser.parse_args(argv)
    build.timm_version()  # timm imported, HF_HUB_OFFLINE set
    return _trace_main(args) if args.command == "trace" else _registry_main(args)
