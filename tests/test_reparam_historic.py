"""NextViT's historic reparam regression on the real releases: in 0.9.16 through 1.0.6
NextConvBlock.reparameterize set ``self.norm = None`` while forward still called it, so a
reparameterized nextvit raised 'NoneType' object is not callable (fixed in 1.0.7). Both the
reparam check and the after-reparam ONNX export catch it.

To keep CI time small, each run exports once: ``-k`` keeps the reparam check and the
TorchScript after-reparam export (the dynamo one fails the same way on 1.0.3; the full
``-m "reparam or onnx" --models nextvit_small`` run is in README's onnx section)."""
from __future__ import annotations

import pytest

from tests.helpers import run_suites
from tests.test_historic import timm_release

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

ARGS = ["-m", "reparam or onnx", "--models", "nextvit_small",
        "-k", "test_reparam_equivalence or torchscript-reparam"]
TEST = "test_reparam_equivalence[nextvit_small]"
ONNX_TEST = "test_onnx_export[nextvit_small-torchscript-reparam]"
INSTALLED = "installed"  # the timm importable in the test environment (the newest release in CI)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(version: str):
        if version not in cache:
            path = [] if version == INSTALLED else [timm_release(version)]
            cache[version] = run_suites(ARGS, tmp_path_factory.mktemp(f"reparam-{version}"), path)
        return cache[version]
    return run


def test_nextvit_reparam_fails_where_it_shipped(runs):
    run = runs("1.0.3")
    assert run.outcomes == {TEST: "failed", ONNX_TEST: "failed"}, run.output
    assert "'NoneType' object is not callable" in run.messages[TEST]
    assert "stages.0.blocks.0.norm (was BatchNorm2d)" in run.messages[TEST]
    onnx_message = run.messages[ONNX_TEST]
    assert ("torchscript export after reparameterize_model failed in module stages.0.blocks.0: "
            "TypeError: 'NoneType' object is not callable") in onnx_message
    assert "stages.0.blocks.0.norm (was BatchNorm2d)" in onnx_message


@pytest.mark.parametrize("version", ["1.0.12", INSTALLED])
def test_nextvit_reparam_passes_once_fixed(runs, version):
    run = runs(version)
    assert run.returncode == 0, run.output
    assert run.outcomes == {TEST: "passed", ONNX_TEST: "passed"}
