"""Differential outputs against a baseline release: what the candidate timm computes for
every selected model, compared with what the baseline timm computed *from the same
deterministic weights* (drawn per tensor from (model, key), so both releases hold the same
values wherever the state_dict layout is the same). No weight file is exchanged: the
baseline writes only its outputs.

Export, under the baseline's timm (a subprocess: never two timm versions in one process):

    PYTHONPATH=.cache/timm-releases/1.0.30 python -m harness export DIR --outputs-only

adds ``reference.safetensors`` to ``DIR/<version>/<model>/`` (a golden record: the float64
outputs rounded to float32, the model's own float32 error err32 per output, the state_dict
layout; harness.checks.golden) and lists it in the model's manifest, creating a manifest of
kind ``outputs`` where no full export is there. The compat suite's ``test_compat_outputs``
(marker compat, id ``<model>-<baseline version>``) runs the candidate in float32 and
compares with the golden rule (20 x err32 + 1e-6 x max|ref| on the CPU), so a silent numeric
change shows as ``changed since 1.0.30: logits max abs err ...``. Changes a release made on
purpose are declared in registry.intended_changes and become strict expected failures.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


from harness.checks import golden  # noqa: I001
from harness.models import build
from harness.weights import (
    artifacts,
    export_cli,  # noqa: F401 - first: its warning filters precede timm's import
)
from harness.weights.artifacts import REFERENCE

KIND = "outputs"


def has_reference(model_dir: Path) -> bool:
    """Whether a model directory's manifest lists a reference (cheap: the manifest only)."""
    try:
        return REFERENCE in json.loads((model_dir / artifacts.MANIFEST).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return False


def export_model_outputs(model_name: str, root: Path, max_params: int | None = None) -> str:
    """Write the reference of one model for the importable timm into root/<version>/<model>/;
    'exported', 'up to date' or 'skipped: ...'. Raises on a failed build."""
    version = build.timm_version()
    target = root / version / model_name
    if target.is_dir():
        try:
            if REFERENCE in artifacts.verify(target).data["files"]:
                return "up to date"
        except artifacts.ArtifactError:
            pass
    meta = build.create(model_name, device="meta")
    n_params = build.param_count(meta)
    if max_params is not None and n_params > max_params:
        return f"skipped: {n_params:,} parameters > --max-params {max_params:,}"
    input_size = build.choose_input_size(model_name, meta)
    del meta
    record = golden.record(model_name, tuple(input_size))
    try:
        manifest = artifacts.verify(target).data if target.is_dir() else None
    except artifacts.ArtifactError:
        manifest = None
    if manifest is None:  # no (valid) full export here: an outputs-only model directory
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        manifest = artifacts.manifest_fields(model_name, n_params, input_size, {}, kind=KIND, files={})
    golden.save(record, target / REFERENCE)
    manifest["files"] = {**manifest["files"], REFERENCE: artifacts.sha256(target / REFERENCE)}
    artifacts.write_manifest(target, manifest)
    return "exported"


def export_outputs(root: Path, models: list[str], max_params: int | None = None, log=print) -> dict[str, str]:
    results = {}
    for name in models:
        try:
            status = export_model_outputs(name, root, max_params)
        except Exception as exc:  # noqa: BLE001 - reported per model; the exit code says it
            status = f"FAILED: {type(exc).__name__}: {exc}"[:400]
        results[name] = status
        log(f"{build.timm_version()} {name} (outputs): {status}")
    return results


def check_outputs(artifact, device: str) -> golden.Comparison | None:
    """The candidate's outputs vs the baseline's reference for one artifact set. Raises
    AssertionError 'changed since <version>: ...' with the numbers; skips on the meta device."""
    import pytest

    from harness.checks.compat import verified_manifest

    manifest = verified_manifest(artifact)
    if device == "meta":
        pytest.skip("over --max-params: outputs are not computed on the meta device")
    try:
        record = golden.load(manifest.file(REFERENCE), artifact.model)
    except golden.GoldenFileError as exc:
        raise AssertionError(f"artifact {artifact!r}: {exc}") from None
    size = tuple(record.meta.get("input_size") or manifest.data.get("input_size"))
    outputs, feat_shape, layout = golden.run_candidate(artifact.model, size, device, "float32", record.bn_stats)
    profile = f"{device.split(':')[0]}-float32"
    result = golden.compare(record, outputs, feat_shape, layout, profile, size)
    if not result.ok:
        raise AssertionError(describe_change(result, artifact.version))
    return result


def describe_change(result: golden.Comparison, version: str) -> str:
    """'changed since 1.0.30: logits max abs err ... | state_dict layout unchanged', one line
    first (what summaries show), the per-output detail after it."""
    bad = [k.describe() for k in result.keys if not k.ok]
    layout = (f"the state_dict layout changed ({'; '.join(result.layout_changes[:4])}), so the deterministic "
              f"weights differ" if result.layout_changes else "state_dict layout unchanged")
    head = f"{result.model} changed since timm {version}: " + ("; ".join(bad) or "outputs within tolerance") + \
        f" [{layout}]"
    return "\n".join([head, *[f"  {c}" for c in result.other_changes + result.notes],
                      *[f"  {'FAIL' if not k.ok else 'ok  '} {k.describe()}" for k in result.keys]])


# ---------------------------------------------------------------- the export command

def main(argv: list[str] | None = None) -> int:
    """``python -m harness export DIR [...] [--outputs-only]``: the full cross-version export
    (harness.weights.export_cli), which this adds the baseline's reference outputs to, or
    with --outputs-only the references alone."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = export_cli._parser()
    parser.add_argument("--outputs-only", action="store_true",
                        help="write only each model's reference outputs (reference.safetensors: float64 outputs, "
                             "float32 noise, layout) for the differential check; no state_dict, no pickle")
    args = parser.parse_args(argv)
    if not args.outputs_only:
        code = export_cli.main(argv)
        return code if code == 2 else max(code, _outputs(args))
    return _outputs(args)


def _outputs(args: argparse.Namespace) -> int:
    from harness.models.selection import SelectionError

    try:
        models = export_cli._select(args)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"writing reference outputs of {len(models)} model(s) for timm {build.timm_version()} "
          f"into {args.dir / build.timm_version()}")
    results = export_outputs(args.dir, models, args.max_params)
    failed = [m for m, s in results.items() if s.startswith("FAILED")]
    if failed:
        print(f"error: {len(failed)} model(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
