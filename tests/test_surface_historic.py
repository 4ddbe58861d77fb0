"""The surface family on the real releases:

- ``python -W error -c "import timm"``: on torch >= 2.11 ``torch.jit.interface`` warns
  (FutureWarning), and timm <= 1.0.24 used it at import time, so importing timm with warnings
  as errors failed (timm #2663, fixed in 1.0.25 by removing the torch.jit calls).
- the deprecated ``timm.models.layers``: 1.0.23 moved RotaryEmbedding out of
  timm.layers.attention_pool2d but the alias still imported it from there, so
  ``import timm.models.layers`` raised ImportError (timm #2644, fixed in 1.0.24).
- registry and public API against baseline dumps written by the real releases: 1.0.13
  renamed sam2_hiera_tiny.r224/.r896 without a deprecation mapping (1.0.12 still had them);
  1.0.12 removed timm.optim.Nadam without an alias (1.0.9 had it).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.weights.releases import timm_release
from tests.helpers import ROOT, run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow


def _run(version: str, tmp_path_factory, *args: str):
    return run_suites(["-m", "surface", "--models", "resnet18", *args],
                      tmp_path_factory.mktemp(f"surface-{version}"), [timm_release(version)])


@pytest.mark.parametrize("version, outcome", [("1.0.24", "failed"), ("1.0.25", "passed")])
def test_import_with_warnings_as_errors_needs_1_0_25(version, outcome, tmp_path_factory):
    run = _run(version, tmp_path_factory, "-k", "warnings_as_errors")
    test = "test_import[timm-warnings_as_errors]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert (f"python -W error -c 'import timm' (timm {version}) failed: FutureWarning: `torch.jit.interface` is "
                f"deprecated") in run.messages[test]


@pytest.mark.parametrize("version, outcome", [("1.0.23", "failed"), ("1.0.24", "passed")])
def test_deprecated_layers_alias_imports_again_in_1_0_24(version, outcome, tmp_path_factory):
    run = _run(version, tmp_path_factory, "-k", "deprecated_aliases")
    test = "test_import[timm-deprecated_aliases]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        message = run.messages[test]
        assert "deprecated alias modules of timm 1.0.23 that no longer import (1):" in message
        assert "timm.models.layers: ImportError: cannot import name 'RotaryEmbedding'" in message


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """registry.json of 1.0.9 and 1.0.12, each written under its own release."""
    out = tmp_path_factory.mktemp("registry-dumps")
    for version in ("1.0.9", "1.0.12"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(timm_release(version)), str(ROOT)]))
        proc = subprocess.run([sys.executable, "-m", "harness", "registry-dump", str(out / version / "registry.json")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_registry_and_public_api_removals_where_they_shipped(dumps, tmp_path_factory):
    args = ("-k", "registry or public_api", "--compat-dir", str(dumps), "--ignore-known-issues")
    before = _run("1.0.12", tmp_path_factory, *args)
    assert before.outcomes == {"test_registry[timm-1.0.9]": "passed", "test_public_api[timm-1.0.9]": "failed"}, \
        before.output
    assert "names removed (1):" in before.messages["test_public_api[timm-1.0.9]"]
    assert "timm.optim.Nadam" in before.messages["test_public_api[timm-1.0.9]"]
    after = _run("1.0.15", tmp_path_factory, *args)
    assert after.outcomes == {"test_registry[timm-1.0.9]": "failed", "test_registry[timm-1.0.12]": "failed",
                              "test_public_api[timm-1.0.9]": "failed", "test_public_api[timm-1.0.12]": "passed"}, \
        after.output
    for baseline in ("1.0.9", "1.0.12"):
        message = after.messages[f"test_registry[timm-{baseline}]"]
        assert "pretrained tags removed without a deprecation mapping (2):" in message
        assert "sam2_hiera_tiny.r224 (the model now has: sam2_hiera_tiny.fb_r896" in message
