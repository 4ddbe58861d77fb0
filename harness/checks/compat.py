"""The compat checks: artifacts written by another timm release (harness.weights.artifacts) must
still load in the candidate. State dicts are timm's supported contract (strict load into
the candidate's create_model, identical outputs); whole-module pickles are best effort
and checked separately (``torch.load(weights_only=False)`` only after every hash in the
manifest verified, then the forward must give the stored outputs)."""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from packaging.version import InvalidVersion, Version

from harness.checks import compare
from harness.models import build
from harness.weights import artifacts
from harness.weights.deterministic import single_thread

# Same torch, same weights, same input, one thread (weights.single_thread): only a changed
# op order in timm moves the output. Artifacts written on another machine (other CPU
# kernels) may need more; a deep model's logits can amplify float32 noise a lot.
RTOL, ATOL = 1e-5, 1e-5
REGISTRY_FILE = "registry.json"  # harness.weights.registry_dump.FILENAME, one per exported release


class CompatLayoutError(ValueError):
    """--compat-dir is unusable as a whole (missing, not DIR/<version>/<model>/); a usage error."""


@dataclass(frozen=True)
class ArtifactSet:
    version: str     # the timm release that wrote it
    model: str
    path: Path
    kind: str = "full"        # 'outputs': reference outputs only (export --outputs-only)
    reference: bool = False   # lists reference outputs (the differential check, checks.differential)

    def __repr__(self) -> str:
        return f"{self.model}-{self.version}"


def discover(compat_dir: Path, candidate_version: str) -> list[ArtifactSet]:
    """Every model directory under compat_dir/<version>/ written by a release other than the
    candidate. Layout problems raise CompatLayoutError; a damaged model directory is still
    returned (its checks fail with the reason). A directory holding only other releases'
    registry dumps (``registry.json``: the surface checks) is valid and has no sets."""
    if not compat_dir.is_dir():
        raise CompatLayoutError(f"--compat-dir {compat_dir}: no such directory (write one with "
                                f"`python -m harness export {compat_dir}` under a baseline timm)")
    sets, versions = [], []
    for vdir in sorted(p for p in compat_dir.iterdir() if not p.name.startswith(".")):
        try:
            Version(vdir.name)
        except InvalidVersion:
            raise CompatLayoutError(f"--compat-dir {compat_dir}: {vdir.name!r} is not a timm version; expected "
                                    f"DIR/<timm version>/<model>/ as written by `python -m harness export DIR`") from None
        if not vdir.is_dir():
            raise CompatLayoutError(f"--compat-dir {compat_dir}: {vdir.name} is not a directory")
        models = sorted(p for p in vdir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not models and not (vdir / REGISTRY_FILE).is_file():
            raise CompatLayoutError(f"--compat-dir {compat_dir}: {vdir.name}/ holds no model directory")
        versions.append(vdir.name)
        if vdir.name != candidate_version:
            sets += [ArtifactSet(vdir.name, m.name, m, *_kind_of(m)) for m in models]
    if not sets and not registry_files(compat_dir, candidate_version):
        found = f"only timm {', '.join(versions)}" if versions else "no version directory"
        raise CompatLayoutError(f"--compat-dir {compat_dir}: holds {found}; compat needs artifacts written by "
                                f"another release than the candidate timm {candidate_version}")
    return sets


def _kind_of(model_dir: Path) -> tuple[str, bool]:
    """(kind, lists a reference) from the manifest alone, nothing verified yet; an unreadable
    manifest counts as a full export, so its checks fail with the reason."""
    try:
        data = json.loads((model_dir / artifacts.MANIFEST).read_text())
        return str(data.get("kind", "full")), artifacts.REFERENCE in (data.get("files") or {})
    except (OSError, ValueError, AttributeError):
        return "full", False


def registry_files(compat_dir: Path, candidate_version: str) -> list[tuple[str, Path]]:
    """(version, path) of each release's registry dump in compat_dir, the candidate's own
    excluded (discover() has already vetted the layout)."""
    return [(vdir.name, vdir / REGISTRY_FILE) for vdir in sorted(compat_dir.iterdir())
            if vdir.is_dir() and not vdir.name.startswith(".") and vdir.name != candidate_version
            and (vdir / REGISTRY_FILE).is_file()]


def verified_manifest(artifact: ArtifactSet) -> artifacts.Manifest:
    try:
        manifest = artifacts.verify(artifact.path)
    except artifacts.ArtifactError as exc:
        raise AssertionError(f"artifact {artifact!r} is unusable: {exc}") from None
    if manifest.timm != artifact.version:
        raise AssertionError(f"artifact {artifact!r}: manifest says timm {manifest.timm}, directory says "
                             f"{artifact.version} (moved or tampered)")
    return manifest


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def key_changes(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]) -> list[str]:
    """What stops a strict load, sorted into kinds: renamed (an unexpected and a missing key
    with the same shape and a similar name), missing, unexpected, shape changed."""
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    renamed = []
    for old in list(unexpected):
        same_shape = [k for k in missing if tuple(model_sd[k].shape) == tuple(ckpt_sd[old].shape)]
        best = difflib.get_close_matches(old, same_shape, n=1, cutoff=0.6)
        if best:
            renamed.append(f"{old} -> {best[0]}")
            unexpected.remove(old)
            missing.remove(best[0])
    shapes = [f"{k}: {tuple(ckpt_sd[k].shape)} -> {tuple(v.shape)}" for k, v in model_sd.items()
              if k in ckpt_sd and tuple(v.shape) != tuple(ckpt_sd[k].shape)]
    sections = [("renamed keys (old -> new)", renamed), ("missing keys (in the model, not in the file)", missing),
                ("unexpected keys (in the file, not in the model)", unexpected),
                ("shape changes (file -> model)", shapes)]
    return [compare._listing(title, lines) for title, lines in sections if lines]


def _forward(model: torch.nn.Module, manifest: artifacts.Manifest, device: str):
    x = _load_safetensors(manifest.file(artifacts.INPUT))["input"].to(device)
    with torch.no_grad(), single_thread():  # as the export ran it
        return model(x)


def assert_outputs(out, manifest: artifacts.Manifest, what: str) -> None:
    expected = artifacts.outputs_from_dict(_load_safetensors(manifest.file(artifacts.OUTPUTS)))
    outs = out if isinstance(out, (list, tuple)) else [out]
    refs = expected if isinstance(expected, list) else [expected]
    if len(outs) != len(refs):
        raise AssertionError(f"{what}: {len(outs)} outputs, timm {manifest.timm} stored {len(refs)}")
    for i, (o, r) in enumerate(zip(outs, refs)):
        compare.assert_close(o.float().cpu(), r, f"{what}{f'[{i}]' if len(refs) > 1 else ''}", rtol=RTOL, atol=ATOL)


def check_state_dict(artifact: ArtifactSet, device: str) -> None:
    """Strict load of the stored state_dict into the candidate's create_model, then the
    stored outputs. On 'meta' (over --max-params) only the key layout."""
    manifest = verified_manifest(artifact)
    sd = _load_safetensors(manifest.file(artifacts.STATE_DICT))
    model = build.create(artifact.model, device=device, **manifest.create_kwargs)
    changes = key_changes(model.state_dict(), sd)
    if changes:
        raise AssertionError(f"state_dict written by timm {manifest.timm} does not load strictly into "
                             f"create_model({artifact.model!r}) of timm {build.timm_version()}:\n" + "\n".join(changes))
    if device == "meta":
        return
    model.load_state_dict(sd, strict=True)
    assert_outputs(_forward(model, manifest, device), manifest,
                   f"outputs with the state_dict of timm {manifest.timm} vs the outputs it stored")


def check_pickle(artifact: ArtifactSet, device: str) -> None:
    """torch.load of the whole module pickled by another release (only once its hash
    verified), then a forward that must give the stored outputs."""
    import pytest

    manifest = verified_manifest(artifact)
    if device == "meta":
        pytest.skip("over --max-params: a whole-module pickle is not loaded on the meta device")
    if not manifest.has_pickle:
        pytest.skip(f"timm {manifest.timm} could not pickle {artifact.model}: {manifest.data.get('pickle_error')}")
    where = f"the {artifact.model} module pickled by timm {manifest.timm}"
    try:
        model = torch.load(manifest.file(artifacts.PICKLE), map_location=device, weights_only=False)  # hash verified
    except Exception as exc:
        raise AssertionError(f"torch.load of {where} on timm {build.timm_version()} raised "
                             f"{type(exc).__name__}: {exc}") from None
    model.eval()
    try:
        out = _forward(model, manifest, device)
    except Exception as exc:
        raise AssertionError(f"forward of {where} on timm {build.timm_version()} raised "
                             f"{type(exc).__name__}: {exc}") from None
    assert_outputs(out, manifest, f"outputs of {where} vs the outputs it stored")
