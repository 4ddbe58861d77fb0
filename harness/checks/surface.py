"""The surface check family: what ``import timm`` and the registry promise, package-wide
(test ids use the pseudo-model ``timm``: ``test_import[timm-warnings_as_errors]``).

- ``warnings_as_errors``: ``python -W error -c "import timm"`` succeeds (timm 1.0.11-1.0.24
  warned on torch >= 2.11 about ``torch.jit.interface``, an error for anyone running with
  warnings as errors; fixed in 1.0.25).
- ``deprecated_aliases``: every deprecated alias module of the old layout
  (``timm.models.layers``, ``.registry``, ``.helpers``, ...) still imports (timm 1.0.23's
  ``timm.models.layers`` raised ImportError; fixed in 1.0.24).
- registry against each baseline (its ``registry.json``, written under the baseline timm by
  ``python -m harness export`` or ``registry-dump``): a model or pretrained tag the baseline
  had that the candidate lacks, without a deprecation mapping, is a failure; changed
  ``pretrained_cfg`` fields are listed as notes.
- public API against each baseline: every public name of timm's public modules (and of the
  deprecated aliases) the baseline had still exists (a submodule that is no longer imported
  eagerly but still imports counts as present).

The candidate's own dump is made the same way, in a subprocess, so both sides are read
from JSON and no two timm versions ever share a process.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks import compare
from harness.models import build
from harness.weights import registry_dump

IMPORT_CHECKS = ("warnings_as_errors", "deprecated_aliases")
MAX_CHANGES_IN_NOTE = 20


def _env() -> dict[str, str]:
    """The running interpreter's import path, so a subprocess sees the same timm/harness."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def check_import_warnings() -> None:
    """``python -W error -c "import timm"`` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-W", "error", "-c", "import timm"], env=_env(), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        where = [ln.strip() for ln in lines if ln.strip().startswith("File ") and "timm" in ln]
        raise AssertionError(f"python -W error -c 'import timm' (timm {build.timm_version()}) failed: "
                             f"{lines[-1].strip() if lines else f'exit code {proc.returncode}'}"
                             + (f" (raised from {where[-1]})" if where else ""))


def candidate_dump(workdir: Path) -> dict:
    """The candidate's registry dump, written by ``python -m harness registry-dump`` in a
    subprocess exactly as a baseline's is."""
    out = workdir / f"candidate-{registry_dump.FILENAME}"
    proc = subprocess.run([sys.executable, "-m", "harness", "registry-dump", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise AssertionError(f"python -m harness registry-dump under timm {build.timm_version()} failed: {tail}")
    return registry_dump.read(out)


def check_deprecated_aliases(dump: dict) -> None:
    broken = [f"{name}: {info['error']}" for name, info in sorted(dump["aliases"].items()) if info["error"]]
    if broken:
        raise AssertionError(compare._listing(f"deprecated alias modules of timm {dump['timm']} that no longer import",
                                              broken))


# ----------------------------------------------------------------------------- registry diff

@dataclass
class RegistryDiff:
    removed_models: list[str] = field(default_factory=list)
    removed_tags: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)      # 'tag: field old -> new'
    deprecated: list[str] = field(default_factory=list)   # 'old -> new' mappings that cover a removal


def _mapped(name: str, candidate: dict) -> str | None:
    """The candidate's deprecation target for ``name`` if it exists in the candidate."""
    target = candidate["deprecated"].get(name)
    if not target:
        return None
    arch = target.split(".", 1)[0]
    model = candidate["models"].get(arch)
    if model is None or ("." in target and target not in model["tags"]):
        return None
    return target


def registry_diff(baseline: dict, candidate: dict) -> RegistryDiff:
    """The whole registry, whatever --models selects: a removal anywhere breaks a user,
    and a package-level result must not depend on the selection (known issues match it)."""
    diff = RegistryDiff()
    for name, old in sorted(baseline["models"].items()):
        new = candidate["models"].get(name)
        if new is None:
            target = _mapped(name, candidate)
            if target is None:
                diff.removed_models.append(f"{name} (module {old['module']})")
            else:
                diff.deprecated.append(f"{name} -> {target}")
            continue
        for tag in old["tags"]:
            if tag in new["tags"] or ("." not in tag and new["tags"]):  # a bare name resolves to the default tag
                if tag in new["tags"]:
                    diff.changed += _cfg_changes(tag, old["cfgs"].get(tag, {}), new["cfgs"].get(tag, {}))
                continue
            target = _mapped(tag, candidate)
            if target is not None:
                diff.deprecated.append(f"{tag} -> {target}")
                continue
            close = difflib.get_close_matches(tag, new["tags"], n=2, cutoff=0.0)
            diff.removed_tags.append(f"{tag}" + (f" (the model now has: {', '.join(close)})" if close else
                                                 " (the model has no pretrained tag now)"))
    return diff


def _cfg_changes(tag: str, old: dict, new: dict) -> list[str]:
    return [f"{tag}: {k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def check_registry(baseline: dict, candidate: dict) -> RegistryDiff:
    """Fails on removals without a deprecation mapping; returns the diff (for the notes)."""
    diff = registry_diff(baseline, candidate)
    parts = []
    if diff.removed_models:
        parts.append(compare._listing("models removed without a deprecation mapping", diff.removed_models))
    if diff.removed_tags:
        parts.append(compare._listing("pretrained tags removed without a deprecation mapping", diff.removed_tags))
    if parts:
        raise AssertionError(f"registry of timm {candidate['timm']} against timm {baseline['timm']}: "
                             + "\n".join(parts))
    return diff


def describe_changes(diff: RegistryDiff, baseline: dict, candidate: dict, report: Path | None) -> str:
    """One note line for the changed pretrained_cfg fields (the full list in ``report``)."""
    head = (f"registry of timm {candidate['timm']} against timm {baseline['timm']}: {len(diff.changed)} pretrained_cfg "
            f"field(s) changed, {len(diff.deprecated)} removal(s) covered by a deprecation mapping")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        changed = "".join(f"- {c}\n" for c in diff.changed)
        mapped = "".join(f"- {d}\n" for d in diff.deprecated)
        report.write_text(f"# {head}\n\n## Changed pretrained_cfg fields\n\n{changed}\n"
                          f"## Deprecation mappings\n\n{mapped}")
        return f"{head} (listed in {report})"
    shown = "; ".join(diff.changed[:MAX_CHANGES_IN_NOTE])
    hidden = len(diff.changed) - MAX_CHANGES_IN_NOTE
    more = f"; ... and {hidden} more" if hidden > 0 else ""
    return f"{head}{': ' + shown + more if diff.changed else ''}"


# ----------------------------------------------------------------------------- public API

def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_public_api(baseline: dict, candidate: dict) -> None:
    """Every public name of the baseline's public modules exists in the candidate."""
    removed = []
    models = set(baseline["models"])  # model entrypoints in timm.models: the registry check's business
    for module, old in sorted(baseline["public"].items()):
        new = candidate["public"].get(module)
        if new is None:
            if not _importable(module):
                removed.append(f"{module} (the module)")
            continue
        removed += [f"{module}.{n}" for n in old["names"] if n not in new["names"] and n not in new["modules"]
                    and not (module == "timm.models" and n in models)]
        removed += [f"{module}.{n} (submodule)" for n in old["modules"]
                    if n not in new["modules"] and n not in new["names"] and not _importable(f"{module}.{n}")]
    if removed:
        raise AssertionError(f"public API of timm {candidate['timm']} against timm {baseline['timm']}: "
                             + compare._listing("names removed", removed))
