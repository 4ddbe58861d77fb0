"""The registry and import surface of the importable timm, as JSON, so a later release can
be compared with it without ever importing two timm versions in one process: written by
``python -m harness export DIR`` (``DIR/<version>/registry.json``) and ``python -m harness
registry-dump OUT`` under the baseline, read by the surface checks under the candidate.

Holds every registered model (its module and pretrained tags, each tag's pretrained_cfg),
the deprecation mappings (``register_model_deprecations``), and the public names of timm's
public modules, including the deprecated alias modules (``timm.models.layers`` and the
like: the submodules of timm.models that ``import timm`` leaves alone).
Runs under every timm from 0.9.16 on."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pkgutil
import sys
import types
import warnings
from pathlib import Path
from typing import Any

FORMAT = 1
FILENAME = "registry.json"
PUBLIC_MODULES = ("timm", "timm.models", "timm.layers", "timm.data", "timm.utils", "timm.optim", "timm.scheduler",
                  "timm.loss")


class RegistryDumpError(ValueError):
    """A registry file that is missing, unreadable, tampered with or of an unknown format."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def public_names(module: types.ModuleType) -> dict[str, list[str]]:
    """Names users import from a module: {'names': public attributes, 'modules': those that
    are timm submodules} (a submodule can stop being imported eagerly and still import;
    a module-level ``import torch`` is not API and is left out)."""
    names, modules = [], []
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith("timm"):
                modules.append(name)
            continue
        names.append(name)
    return {"names": sorted(names), "modules": sorted(modules)}


def deprecated_alias_modules() -> dict[str, dict[str, str]]:
    """The submodules of timm.models that ``import timm`` does not import: the deprecated
    aliases of the old layout (``timm.models.layers``, ``.registry``, ``.helpers``, ...).
    Each is imported here: name -> {'warning': its deprecation warning, 'error': what its
    import raised} (timm 1.0.23's ``timm.models.layers`` raised ImportError)."""
    import timm.models

    found = {}
    for info in pkgutil.iter_modules(timm.models.__path__):
        name = f"timm.models.{info.name}"
        if info.name.startswith("_") or name in sys.modules:
            continue
        error = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - recorded: the surface check reports it
                error = f"{type(exc).__name__}: {exc}"[:300]
        notes = [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
        found[name] = {"warning": notes[0] if notes else "", "error": error}
    return found


def dump() -> dict[str, Any]:
    """The registry and public surface of the importable timm."""
    import timm
    import timm.models
    import torch

    models = {}
    pretrained = set(timm.list_pretrained())
    for name in timm.list_models():
        tags = sorted(t for t in pretrained if t.split(".", 1)[0] == name)
        cfgs = {}
        for tag in tags:
            cfg = timm.models.get_pretrained_cfg(tag)
            cfgs[tag] = _jsonable(cfg.to_dict() if cfg is not None else {})
        models[name] = {"module": timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1], "tags": tags,
                        "cfgs": cfgs}
    aliases = deprecated_alias_modules()
    surface = {}
    for name in PUBLIC_MODULES + tuple(sorted(a for a, info in aliases.items() if not info["error"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            surface[name] = public_names(importlib.import_module(name))
    return {"format": FORMAT, "timm": timm.__version__, "torch": torch.__version__, "models": models,
            "deprecated": dict(timm.models.get_deprecated_models()), "aliases": aliases, "public": surface}


def _digest(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write(path: Path, data: dict[str, Any] | None = None) -> Path:
    """Atomically write a dump (the importable timm's unless ``data`` is given), with the
    sha256 of its content, so a damaged file is refused rather than half-read."""
    data = dict(data if data is not None else dump())
    data["sha256"] = _digest(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read(path: Path) -> dict[str, Any]:
    """A verified dump; RegistryDumpError says what is wrong with the file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryDumpError(f"{path}: no registry dump (write it with `python -m harness registry-dump {path}` "
                                f"under the baseline timm, or `python -m harness export`)") from None
    except (OSError, ValueError) as exc:
        raise RegistryDumpError(f"{path}: unreadable registry dump ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise RegistryDumpError(f"{path}: unknown registry dump format {found!r} (this harness reads format {FORMAT})")
    if data.get("sha256") != _digest(data):
        raise RegistryDumpError(f"{path}: content does not match its sha256 (corrupt or edited); re-write it")
    for field in ("timm", "models", "deprecated", "aliases", "public"):
        if field not in data:
            raise RegistryDumpError(f"{path}: registry dump lacks {field!r}")
    return data


def main(argv: list[str] | None = None) -> int:
    """python -m harness registry-dump OUT: write the importable timm's registry to OUT."""
    parser = argparse.ArgumentParser(prog="python -m harness registry-dump",
                                     description="write the importable timm's model registry, pretrained cfgs, "
                                                 "deprecations and public names as JSON (read by the surface checks)")
    parser.add_argument("out", type=Path, help="the JSON file to write")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    data = dump()
    write(args.out, data)
    print(f"timm {data['timm']}: {len(data['models'])} models, "
          f"{sum(len(m['tags']) for m in data['models'].values())} pretrained tags, "
          f"{len(data['deprecated'])} deprecations, {len(data['aliases'])} deprecated alias modules -> {args.out}")
    return 0
