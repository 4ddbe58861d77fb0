"""The differential check (compat, test_compat_outputs): a baseline release's outputs,
exported without weights (``export --outputs-only``, or added to a full export), against
the candidate's on the same deterministic weights. A toy whose logits drift by 1e-3 fails
with "changed since"; no drift passes; a declared intended change turns the failure into a
strict expected failure (and its absence into an XPASS failure)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.checks import differential
from harness.checks.compat import ArtifactSet, discover
from harness.models import build
from harness.weights import artifacts
from tests.helpers import ROOT, run_suites
from tests.toys import toy_diff_models  # noqa: F401 - registers the toy

TOY = "toy_diff_ok"
BASELINE = "1.0.0"  # the toy's "release": the export runs with timm.__version__ set to it


@pytest.fixture
def exported(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_TOY_DRIFT", raising=False)
    monkeypatch.setattr(build, "timm_version", lambda: BASELINE)
    assert differential.export_model_outputs(TOY, tmp_path) == "exported"
    assert differential.export_model_outputs(TOY, tmp_path) == "up to date"
    monkeypatch.undo()
    return tmp_path


def artifact(root) -> ArtifactSet:
    (found,) = discover(root, build.timm_version())
    return found


def test_outputs_only_export_is_a_verified_artifact_of_its_own_kind(exported):
    found = artifact(exported)
    assert (found.version, found.model, found.kind, found.reference) == (BASELINE, TOY, "outputs", True)
    manifest = artifacts.verify(found.path)
    assert set(manifest.data["files"]) == {artifacts.REFERENCE} and manifest.kind == "outputs"


def test_same_numbers_pass_and_a_drift_fails(exported, monkeypatch):
    result = differential.check_outputs(artifact(exported), "cpu")
    assert result.ok
    monkeypatch.setenv("HARNESS_TOY_DRIFT", "1e-3")
    with pytest.raises(AssertionError, match=rf"{TOY} changed since timm {BASELINE}: logits: max abs err .* x its own "
                                             r"float32 error .*\[state_dict layout unchanged\]"):
        differential.check_outputs(artifact(exported), "cpu")


def test_a_tampered_reference_is_named(exported):
    ref = artifact(exported).path / artifacts.REFERENCE
    ref.write_bytes(ref.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(AssertionError, match="reference.safetensors: sha256 .* does not match"):
        differential.check_outputs(artifact(exported), "cpu")


def test_an_unknown_artifact_kind_is_an_error(exported):
    path = artifact(exported).path / artifacts.MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text()), "kind": "weights-v9"}))
    with pytest.raises(artifacts.ArtifactError, match="unknown artifact kind 'weights-v9'"):
        artifacts.verify(path.parent)


def test_the_full_export_adds_the_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "timm_version", lambda: BASELINE)
    assert differential.main([str(tmp_path), "--models", TOY]) == 0
    monkeypatch.undo()
    found = artifact(tmp_path)
    assert found.kind == "full" and found.reference
    assert {artifacts.STATE_DICT, artifacts.REFERENCE} <= set(artifacts.verify(found.path).data["files"])


def _export_in_subprocess(root) -> None:
    """As nox does: a separate process (here the same timm, reporting the toy's release)."""
    script = ("import timm, tests.toys.toy_diff_models; timm.__version__ = %r\n"
              "from harness.checks.differential import main; raise SystemExit(main([%r, '--outputs-only', "
              "'--models', %r]))" % (BASELINE, str(root), TOY))
    env = {k: v for k, v in __import__("os").environ.items() if k != "HARNESS_TOY_DRIFT"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True)


def test_through_the_suites_with_an_intended_change(tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    _export_in_subprocess(root)
    args = ["-p", "tests.toys.toy_diff_models", "-m", "compat", "--compat-dir", str(root), "--models", TOY]
    test = f"test_compat_outputs[{TOY}-{BASELINE}]"
    monkeypatch.setenv("HARNESS_TOY_DRIFT", "1e-3")
    drifted = run_suites(args, tmp_path / "drift")
    assert drifted.outcomes == {test: "failed"}, drifted.output
    assert f"changed since timm {BASELINE}: logits" in drifted.messages[test]
    monkeypatch.setenv("HARNESS_TOY_INTENDED", "1")
    assert run_suites(args, tmp_path / "intended").outcomes == {test: "xfailed"}
    assert run_suites(args + ["--ignore-known-issues"], tmp_path / "ignored").outcomes == {test: "failed"}
    monkeypatch.delenv("HARNESS_TOY_DRIFT")
    undrifted = run_suites(args, tmp_path / "stale")  # declared, but nothing changed: the entry is stale
    assert undrifted.outcomes == {test: "failed"} and "XPASS(strict)" in undrifted.messages[test]
