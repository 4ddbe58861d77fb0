"""The transforms family on the real releases (gcvit_xxtiny, the smallest GCViT):

- batch invariance: GlobalContextVit tiled each image's global query over the windows with
  ``repeat`` while the windows are image-major, so in a batch every image attended with
  other images' global context (outputs depend on the batch); fixed in 1.0.31 with
  ``repeat_interleave`` (timm's own test_gcvit_batch_consistency came with the fix).
- gradient checkpointing: before 1.0.16 GlobalContextVitStage called
  ``checkpoint.checkpoint(blk, x)`` on the ``checkpoint`` *function*, and without the global
  query, so a train step with set_grad_checkpointing(True) raised (commit b6692ed5 "Fix several
  grad checkpointing issues", 1.0.16; ResNetV2 failed the same release on a non-iterable stage).
"""
from __future__ import annotations

import pytest

from harness.weights.releases import timm_release
from tests.helpers import run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

MODEL = "gcvit_xxtiny"
INSTALLED = "installed"


def _run(version: str, transform: str, tmp_path_factory):
    path = [] if version == INSTALLED else [timm_release(version)]
    return run_suites(["-m", "transforms", "--models", MODEL, "-k", transform],
                      tmp_path_factory.mktemp(f"transforms-{version}"), path)


@pytest.mark.parametrize("version, outcome", [("1.0.30", "failed"), (INSTALLED, "passed")])
def test_gcvit_batch_invariance_fixed_in_1_0_31(version, outcome, tmp_path_factory):
    run = _run(version, "batch_invariance", tmp_path_factory)
    test = f"test_transform[{MODEL}-batch_invariance]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert "sample 0 run alone: output differs from its row of the batch of 3: max abs err" in run.messages[test]


@pytest.mark.parametrize("version, outcome", [("1.0.15", "failed"), ("1.0.16", "passed")])
def test_gcvit_gradient_checkpointing_fixed_in_1_0_16(version, outcome, tmp_path_factory):
    run = _run(version, "grad_checkpointing", tmp_path_factory)
    test = f"test_transform[{MODEL}-grad_checkpointing]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert ("train-mode forward/backward with set_grad_checkpointing(True) raised AttributeError: 'function' "
                "object has no attribute 'checkpoint'") in run.messages[test]
