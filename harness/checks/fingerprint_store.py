"""Where fingerprints live and how they are made, without importing timm.

A timm tree is named by a SPEC: a release version (installed with pip under
.cache/timm-releases/, harness.weights.releases), a folder that holds a ``timm/`` package (a
checkout or a copy), or ``installed`` (the timm this interpreter would import, found
without importing it). Its fingerprints live in one folder,

    .cache/fingerprints/<environment>/<timm version>-<tree digest>/
        registry.json          every model name; entry points, pretrained cfgs, build kwargs of those asked for
        trace-<pid>.jsonl      one record per traced model (append-only: resumable)
        index.json             the static hashes computed so far (harness.models.source_index)

keyed by the tree's digest (every .py file's path and content, so an edited checkout
never reuses stale fingerprints) and by the environment: Python version, torch version,
and the harness modules that decide what a trace executes (a change to a check's steps
re-traces). Traces run in subprocesses with PYTHONPATH set to the tree, ``--jobs`` at a
time; a worker that dies records the model it was on as incomplete, and the rest go on.

A model whose code, cfgs and kwargs did not change between an already traced tree and
this one has the same fingerprint by construction; ``reuse`` copies it instead of tracing
it again (marked ``derived_from``), so fingerprinting a new release traces only what it
changed.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.models.source_index import SourceIndex, tree_digest
from harness.registry.paths import CACHE_DIR, ROOT
from harness.weights.releases import ReleaseError, timm_release

FORMAT = 1
FINGERPRINTS = CACHE_DIR / "fingerprints"
# the harness modules whose code decides what a trace records
STEP_MODULES = ("checks/exercise.py", "checks/fingerprint.py", "checks/create.py", "checks/reset_classifier.py",
                "models/tracing.py", "models/source_index.py", "models/variants.py", "models/discovery.py",
                "models/build.py", "models/facts.py", "models/heads.py", "models/checkpoint_sources.py",
                "weights/checkpoints.py", "registry/model_families.py", "registry/checkpoint_families.py")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([.-]?(a|b|rc|dev|post)\d*)*$")


class SpecError(ValueError):
    """A SPEC that names no timm tree; the message says why."""


@dataclass(frozen=True)
class Tree:
    spec: str
    root: Path       # the folder that holds timm/
    version: str
    digest: str

    @property
    def label(self) -> str:
        return f"timm {self.version}" + ("" if _VERSION.match(self.spec) else f" ({self.root})")


def _version_of(root: Path) -> str:
    text = (root / "timm" / "version.py").read_text() if (root / "timm" / "version.py").is_file() else ""
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", text)
    return match.group(1) if match else "unknown"


def installed_root() -> Path:
    """The folder holding the timm this interpreter imports (found, not imported)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.origin:
        raise SpecError("no timm is importable here")
    return Path(spec.origin).resolve().parent.parent


def resolve_tree(spec: str) -> Tree:
    """The timm tree a SPEC names (a release is installed on first use)."""
    spec = spec.strip()
    if spec == "installed":
        root = installed_root()
    elif Path(spec).exists():
        path = Path(spec).resolve()
        if (path / "timm" / "__init__.py").is_file():
            root = path
        elif path.name == "timm" and (path / "__init__.py").is_file():
            root = path.parent
        else:
            raise SpecError(f"{spec} holds no timm/ package (expected {path / 'timm' / '__init__.py'})")
    elif _VERSION.match(spec):
        try:
            root = timm_release(spec)
        except (subprocess.CalledProcessError, OSError, ReleaseError) as exc:
            raise SpecError(f"timm=={spec} could not be installed from the package index: {exc}") from None
    else:
        raise SpecError(f"{spec!r} is neither a timm release version, 'installed', nor a folder holding timm/")
    return Tree(spec, root, _version_of(root), tree_digest(root))


def environment_key() -> str:
    parts = [f"python {sys.version_info.major}.{sys.version_info.minor}", f"format {FORMAT}"]
    try:
        parts.append(f"torch {importlib.metadata.version('torch')}")
    except importlib.metadata.PackageNotFoundError:
        parts.append("torch ?")
    for rel in STEP_MODULES:
        path = ROOT / "harness" / rel
        parts.append(hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else rel)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _command(extra_modules: tuple[str, ...], *args: str) -> list[str]:
    """``python -m harness fingerprint ARGS``, importing ``extra_modules`` first (modules
    that register more models, e.g. the harness tests' toys)."""
    if not extra_modules:
        return [sys.executable, "-m", "harness", "fingerprint", *args]
    code = ("import importlib, sys; [importlib.import_module(m) for m in sys.argv[1].split(',')]; "
            "from harness.cli import main; sys.exit(main(['fingerprint', *sys.argv[2:]]))")
    return [sys.executable, "-c", code, ",".join(extra_modules), *args]


def _subprocess_env(tree: Tree) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tree.root), str(ROOT)])
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Store:
    """The fingerprints of one tree in one environment."""

    def __init__(self, tree: Tree, base: Path = FINGERPRINTS, extra_modules: tuple[str, ...] = ()):
        self.tree = tree
        self.extra_modules = tuple(extra_modules)
        self.dir = base / environment_key() / f"{tree.version}-{tree.digest[:16]}"
        self._index: SourceIndex | None = None
        self._registry: dict | None = None

    @property
    def key(self) -> str:
        return f"{self.dir.parent.name}/{self.dir.name}"

    def _remember_tree(self) -> None:
        """tree.json: where this tree's sources are, so a later run can reuse its traces."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "tree.json"
        try:
            recorded = Path(json.loads(path.read_text())["root"])
        except (OSError, ValueError, KeyError):
            recorded = None
        if recorded is None or not (recorded / "timm").is_dir():  # first use, or its sources were removed
            path.write_text(json.dumps({"spec": self.tree.spec, "root": str(self.tree.root),
                                        "version": self.tree.version, "digest": self.tree.digest}, indent=1))

    def index(self) -> SourceIndex:
        if self._index is None:
            self._index = SourceIndex(self.tree.root, cache=self.dir / "index.json")
        return self._index

    def _read_registry(self) -> dict:
        path = self.dir / "registry.json"
        if not path.is_file():
            return {"format": FORMAT, "names": None, "models": {}}
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise SpecError(f"{path} has fingerprint format {data.get('format')}, expected {FORMAT}: delete it")
        return data

    def _dump(self, names: list[str] | None) -> None:
        """Read the registry of this tree in a subprocess: every name, and the records
        (entry point, cfgs, build kwargs) of ``names``; merged into registry.json."""
        start = time.perf_counter()
        self._remember_tree()
        out = self.dir / f".registry-{os.getpid()}.json"
        cmd = _command(self.extra_modules, "registry", "--out", str(out))
        listing = self.dir / f".registry-models-{os.getpid()}"
        if names is not None:
            listing.write_text("\n".join(names))
            cmd += ["--models-file", str(listing)]
        proc = subprocess.run(cmd, env=_subprocess_env(self.tree), capture_output=True, text=True, cwd=ROOT)
        listing.unlink(missing_ok=True)
        if proc.returncode != 0 or not out.is_file():
            raise SpecError(f"reading the model registry of {self.tree.label} failed "
                            f"(exit {proc.returncode}):\n{proc.stderr.strip()[-1500:]}")
        fresh = json.loads(out.read_text())
        out.unlink()
        data = self._read_registry()
        data.update({k: v for k, v in fresh.items() if k != "models"})
        data["models"] = {**data["models"], **fresh["models"]}
        tmp = self.dir / f"registry.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(self.dir / "registry.json")
        self._registry = data
        if names is None or names:
            _say(f"affected: registry of {self.tree.label} read ({len(fresh['models'])} models) in "
                 f"{time.perf_counter() - start:.0f} s")

    def names(self) -> list[str]:
        """Every model registered in this tree, in timm's order."""
        if self._registry is None:
            self._registry = self._read_registry()
        if self._registry.get("names") is None:
            self._dump([])
        return self._registry["names"]

    def models(self, names: list[str] | None = None) -> dict[str, dict]:
        """The registry records (entry point, pretrained cfgs, build kwargs) of ``names``
        (default: every registered model), read on first use."""
        registered = self.names()
        wanted = registered if names is None else [n for n in names if n in set(registered)]
        missing = [n for n in wanted if n not in self._registry["models"]]
        if missing:
            self._dump(None if len(missing) == len(registered) else missing)
        return {n: self._registry["models"][n] for n in wanted}

    def records(self) -> dict[str, dict]:
        """model -> its best record: a complete trace, else a reused one, else an incomplete one."""
        def rank(record: dict) -> int:
            return 0 if record.get("incomplete") else 1 if record.get("derived_from") else 2

        out: dict[str, dict] = {}
        for path in sorted(self.dir.glob("trace-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by a killed worker
                    continue
                if record.get("format") == FORMAT:
                    name = record["model"]
                    if name not in out or rank(record) >= rank(out[name]):
                        out[name] = record
        return out

    def _append(self, records: list[dict], name: str = "derived") -> None:
        if not records:
            return
        with open(self.dir / f"trace-{name}-{os.getpid()}.jsonl", "a") as sink:
            for record in records:
                sink.write(json.dumps(record, sort_keys=True) + "\n")

    def traces(self, names: list[str], jobs: int = 1, reuse: "Callable[[list[str]], dict[str, dict]] | None" = None,
               timeout: int = 1200, traced_only: bool = False, retry_incomplete: bool = False) -> dict[str, dict]:
        """The trace record of each name (registered in this tree), tracing what is missing.
        ``reuse(missing) -> {name: record}`` offers records known to be identical;
        ``traced_only`` ignores records reused earlier (a brute-force check needs real traces);
        ``retry_incomplete`` traces again the models whose earlier trace crashed or timed out."""
        def usable(r: dict) -> bool:
            return not (traced_only and r.get("derived_from")) and not (retry_incomplete and r.get("incomplete"))

        registered = set(self.names())
        wanted = [n for n in names if n in registered]
        done = {n: r for n, r in self.records().items() if usable(r)}
        missing = [n for n in wanted if n not in done]
        if missing and reuse is not None:
            derived = reuse(missing)
            self._append(list(derived.values()))
            done.update(derived)
            missing = [n for n in missing if n not in derived]
            if derived:
                _say(f"affected: {len(derived)} fingerprint(s) of {self.tree.label} reused (unchanged code, cfgs "
                     f"and kwargs since a traced tree)")
        if missing:
            self._trace(missing, jobs, timeout)
            done = {n: r for n, r in self.records().items() if usable(r) or n in missing}
        return {n: done[n] for n in wanted if n in done}

    def _trace(self, names: list[str], jobs: int, timeout: int) -> None:
        """Run workers over the names until each has a record; a worker that dies leaves a
        record 'incomplete' for the model it was on and is restarted on the rest."""
        self.dir.mkdir(parents=True, exist_ok=True)
        start, total = time.perf_counter(), len(names)
        _say(f"affected: tracing {total} model(s) of {self.tree.label} with {jobs} worker(s) into {self.dir}")
        remaining = list(names)
        while remaining:
            chunks = [remaining[i::max(1, jobs)] for i in range(max(1, min(jobs, len(remaining))))]
            workers = []
            for i, chunk in enumerate(chunks):
                models_file = self.dir / f".models-{os.getpid()}-{i}"
                models_file.write_text("\n".join(chunk))
                log = open(self.dir / f"worker-{os.getpid()}-{i}.log", "a")
                cmd = _command(self.extra_modules, "trace", "--out", str(self.dir), "--models-file", str(models_file),
                               "--timeout", str(timeout))
                workers.append((subprocess.Popen(cmd, env=_subprocess_env(self.tree), stdout=log, stderr=log,
                                                 cwd=ROOT), log, models_file))
            last = 0.0
            while any(p.poll() is None for p, _, _ in workers):
                time.sleep(1.0)
                if time.perf_counter() - last > 60:
                    last = time.perf_counter()
                    have = len(set(remaining) & set(self.records()))
                    _say(f"affected: traced {total - len(remaining) + have}/{total} models of {self.tree.label} "
                         f"({time.perf_counter() - start:.0f} s)")
            crashed = []
            for proc, log, models_file in workers:
                log.close()
                models_file.unlink(missing_ok=True)
                current = self.dir / f".current-{proc.pid}"
                if proc.returncode != 0 and current.is_file():
                    crashed.append({"model": current.read_text().strip(), "format": FORMAT, "ids": [], "steps": {},
                                    "errors": {}, "cpu_steps": [], "seconds": 0,
                                    "incomplete": f"the tracing worker died (exit {proc.returncode})"})
                current.unlink(missing_ok=True)
            self._append(crashed, "crashed")
            done = self.records()
            left = [n for n in remaining if n not in done]
            if len(left) == len(remaining):  # no progress at all: do not loop forever
                self._append([{"model": n, "format": FORMAT, "ids": [], "steps": {}, "errors": {}, "cpu_steps": [],
                               "seconds": 0, "incomplete": "no tracing worker got to it"} for n in left], "crashed")
                break
            remaining = left
        _say(f"affected: traced {total} model(s) of {self.tree.label} in {time.perf_counter() - start:.0f} s")


def traced_trees(base: Path = FINGERPRINTS) -> list[Tree]:
    """Trees with traces in this environment whose sources are still where they were (so
    their functions can be hashed), most traced first: the sources of reused fingerprints."""
    folder = base / environment_key()
    found = []
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            data = json.loads((d / "tree.json").read_text())
        except (OSError, ValueError):
            continue
        root = Path(data["root"])
        count = sum(1 for p in d.glob("trace-*.jsonl") for _ in open(p))
        if count and (root / "timm").is_dir():
            found.append((count, Tree(data["spec"], root, data["version"], data["digest"])))
    return [t for _, t in sorted(found, key=lambda ct: -ct[0]) if tree_digest(t.root) == t.digest]
