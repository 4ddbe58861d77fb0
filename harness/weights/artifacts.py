"""Cross-version artifacts: what one timm release writes so that later releases can be
checked against it (``python -m harness export DIR``).

Layout: ``DIR/<timm version>/<model>/`` holding the deterministic weights as a state_dict
(``state_dict.safetensors``), the whole module pickled with ``torch.save(model)``
(``model.pth``), the input and the outputs (``input.safetensors``, ``outputs.safetensors``),
a training checkpoint written by timm's ``CheckpointSaver`` as train.py writes it, with the
tensors a resume must restore (``train_checkpoint.pth.tar``, ``train_expected.safetensors``;
harness.weights.training_checkpoints) and ``manifest.json`` (timm/torch/python versions,
model, create kwargs, sha256 of every file). The manifest is written last, inside a
staging directory that is renamed into place, so a model directory either verifies
completely or is rebuilt: exports are atomic, idempotent (a verified model is skipped)
and resumable (an interrupted run redoes only the models it had not committed). Only APIs
that timm 0.9.16 already had are used.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from harness.models import build
from harness.weights import checkpoints, registry_dump, training_checkpoints
from harness.weights.deterministic import fill_deterministic, make_input, single_thread

FORMAT = 1
MANIFEST = "manifest.json"
STATE_DICT, PICKLE, INPUT, OUTPUTS = "state_dict.safetensors", "model.pth", "input.safetensors", "outputs.safetensors"
REQUIRED = (STATE_DICT, INPUT, OUTPUTS)  # model.pth may be absent when the module cannot be pickled
# The baseline's reference outputs for the differential check (harness.checks.differential),
# added to a full export's directory or, with `export --outputs-only`, alone in one of kind
# 'outputs'. A manifest without 'kind' is a full export (the format predates kinds).
REFERENCE = "reference.safetensors"
REQUIRED_BY_KIND = {"full": REQUIRED, "outputs": (REFERENCE,)}
_STAGING = ".staging-"


class ArtifactError(Exception):
    """An artifact that is missing, corrupt or tampered with; the message names the file."""


@dataclass(frozen=True)
class Manifest:
    path: Path          # the model directory
    data: dict[str, Any]

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def timm(self) -> str:
        return self.data["timm"]

    @property
    def create_kwargs(self) -> dict[str, Any]:
        return dict(self.data.get("create_kwargs") or {})

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def has_pickle(self) -> bool:
        return PICKLE in self.data["files"]

    @property
    def kind(self) -> str:
        return self.data.get("kind", "full")

    @property
    def train_checkpoint(self) -> dict[str, Any] | None:
        """{'file', 'expected', 'epoch', 'error'}; None for artifacts written before the
        harness exported training checkpoints (the export then rebuilds them)."""
        return self.data.get("train_checkpoint")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(model_dir: Path) -> Manifest:
    """The manifest of one model directory after checking every file's sha256 against it.
    Raises ArtifactError naming what is wrong; nothing here unpickles anything."""
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{model_dir}: no {MANIFEST} (incomplete or foreign directory; "
                            f"re-run `python -m harness export`)")
    try:
        data = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path}: unknown manifest format {data.get('format') if isinstance(data, dict) else data!r}"
                            f" (this harness reads format {FORMAT})")
    for field in ("model", "timm", "torch", "python", "files"):
        if field not in data:
            raise ArtifactError(f"{manifest_path}: manifest lacks {field!r}")
    if data["model"] != model_dir.name:
        raise ArtifactError(f"{manifest_path}: manifest is for model {data['model']!r}, directory is {model_dir.name!r}")
    files: dict[str, str] = data["files"]
    kind = data.get("kind", "full")
    if kind not in REQUIRED_BY_KIND:
        raise ArtifactError(f"{manifest_path}: unknown artifact kind {kind!r} (this harness reads "
                            f"{', '.join(REQUIRED_BY_KIND)})")
    for name in REQUIRED_BY_KIND[kind]:
        if name not in files:
            raise ArtifactError(f"{manifest_path}: manifest lists no {name}")
    for name, expected in files.items():
        path = model_dir / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        actual = sha256(path)
        if actual != expected:
            raise ArtifactError(f"{path}: sha256 {actual[:16]}... does not match the manifest's {expected[:16]}... "
                                f"(corrupt or tampered; it will not be loaded)")
    return Manifest(model_dir, data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(version_dir: Path) -> None:
    """Remove staging directories left by interrupted exports (their process is gone)."""
    if not version_dir.is_dir():
        return
    for d in version_dir.glob(f"{_STAGING}*"):
        pid = d.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _outputs_dict(out) -> dict:
    if isinstance(out, torch.Tensor):
        return {"output": out}
    if isinstance(out, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in out):
        return {f"output.{i}": t for i, t in enumerate(out)}
    raise TypeError(f"forward returned {type(out).__name__}; artifacts store tensors or sequences of tensors")


def outputs_from_dict(tensors: dict):
    """The forward output as stored: one tensor, or a list for multi-output models."""
    if "output" in tensors:
        return tensors["output"]
    return [tensors[f"output.{i}"] for i in range(len(tensors))]


def _write_training_checkpoint(model_name: str, staging: Path, input_size, kwargs: dict) -> dict[str, Any]:
    """The manifest's 'train_checkpoint' entry; a release whose CheckpointSaver fails
    records the error (its checks then skip with it) instead of failing the export."""
    entry = dict(file=training_checkpoints.CHECKPOINT, expected=training_checkpoints.EXPECTED,
                 epoch=training_checkpoints.EPOCH, error="")
    try:
        training_checkpoints.write_training_checkpoint(model_name, staging, input_size, kwargs)
    except Exception as exc:  # noqa: BLE001 - recorded in the manifest
        for name in (training_checkpoints.CHECKPOINT, training_checkpoints.EXPECTED):
            (staging / name).unlink(missing_ok=True)
        entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return entry


def manifest_fields(model_name: str, n_params: int, input_size, create_kwargs: dict[str, Any], **extra) -> dict:
    """The manifest's description of an export (who wrote it, with what), shared by the full
    export and the outputs-only one (harness.checks.differential)."""
    return dict(format=FORMAT, model=model_name, timm=build.timm_version(), torch=torch.__version__,
                python=platform.python_version(), create_kwargs=create_kwargs, param_count=n_params,
                input_size=list(input_size), **extra)


def write_manifest(model_dir: Path, data: dict[str, Any]) -> None:
    """Replace model_dir's manifest atomically (a crash leaves the old one: the manifest is
    what verify() trusts, so it is written last)."""
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=model_dir)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, model_dir / MANIFEST)


def export_model(model_name: str, root: Path, max_params: int | None = None,
                 create_kwargs: dict[str, Any] | None = None, training_checkpoint: bool = True) -> str:
    """Write root/<timm version>/<model_name>/ unless it already verifies (and, with
    ``training_checkpoint``, has its training checkpoint). Returns what happened:
    'exported', 'up to date' or 'skipped: ...'; raises on a failed build."""
    version = build.timm_version()
    version_dir = root / version
    target = version_dir / model_name
    if target.exists():
        try:
            if verify(target).train_checkpoint is not None or not training_checkpoint:
                return "up to date"
        except ArtifactError:
            pass  # rebuilt below, then swapped in
    kwargs = dict(create_kwargs or {})
    meta = build.create(model_name, device="meta", **kwargs)
    n_params = build.param_count(meta)
    if max_params is not None and n_params > max_params:
        return f"skipped: {n_params:,} parameters > --max-params {max_params:,}"
    input_size = build.choose_input_size(model_name, meta)
    del meta
    model = fill_deterministic(build.create(model_name, device="cpu", **kwargs), model_name)
    x = make_input(model_name, input_size)
    with torch.no_grad(), single_thread():
        outputs = _outputs_dict(model(x))

    version_dir.mkdir(parents=True, exist_ok=True)
    staging = version_dir / f"{_STAGING}{model_name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        checkpoints.write_native_checkpoint(model.state_dict(), staging, "safetensors", stem="state_dict")
        save_file({"input": x.contiguous()}, str(staging / INPUT))
        save_file({k: v.detach().contiguous() for k, v in outputs.items()}, str(staging / OUTPUTS))
        pickle_error = ""
        try:
            torch.save(model, staging / PICKLE)
        except Exception as exc:  # noqa: BLE001 - recorded: the pickle check then skips with it
            (staging / PICKLE).unlink(missing_ok=True)
            pickle_error = f"{type(exc).__name__}: {exc}"[:300]
        train = _write_training_checkpoint(model_name, staging, input_size, kwargs) if training_checkpoint else None
        files = {p.name: sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = manifest_fields(model_name, n_params, input_size, kwargs, outputs=sorted(outputs), threads=1,
                                   pickle_error=pickle_error, files=files,
                                   timm_file=str(Path(sys.modules["timm"].__file__).parent))
        if train is not None:
            manifest["train_checkpoint"] = train
        write_manifest(staging, manifest)
        if target.exists():  # a corrupt or partial older copy
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "exported"


def export(root: Path, models: list[str], max_params: int | None = None, log=print) -> dict[str, str]:
    """Export each model (one failure does not stop the others) and the release's registry
    dump (root/<version>/registry.json, for the surface checks). Returns model -> status,
    where a failure's status starts with 'FAILED'."""
    clean_stale_staging(root / build.timm_version())
    registry = root / build.timm_version() / registry_dump.FILENAME
    try:
        registry_dump.read(registry)
        log(f"{build.timm_version()} {registry_dump.FILENAME}: up to date")
    except registry_dump.RegistryDumpError:
        registry_dump.write(registry)
        log(f"{build.timm_version()} {registry_dump.FILENAME}: written")
    results = {}
    for name in models:
        try:
            status = export_model(name, root, max_params)
        except Exception as exc:  # noqa: BLE001 - reported per model; the exit code says it
            status = f"FAILED: {type(exc).__name__}: {exc}"[:400]
        results[name] = status
        log(f"{build.timm_version()} {name}: {status}")
    return results
