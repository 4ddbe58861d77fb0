"""NextViT's historic reparam regression on the real releases: in 0.9.16 through 1.0.6
NextConvBlock.reparameterize set ``self.norm = None`` while forward still called it, so a
reparameterized nextvit raised 'NoneType' object is not callable (fixed in 1.0.7)."""
from __future__ import annotations

import pytest

from tests.helpers import run_suites
from tests.test_historic import timm_release

ARGS = ["-m", "reparam", "--models", "nextvit_small"]
TEST = "test_reparam_equivalence[nextvit_small]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(version: str):
        if version not in cache:
            cache[version] = run_suites(ARGS, tmp_path_factory.mktemp(f"reparam-{version}"),
                                        [timm_release(version)])
        return cache[version]
    return run


def test_nextvit_reparam_fails_where_it_shipped(runs):
    run = runs("1.0.3")
    assert run.outcomes == {TEST: "failed"}, run.output
    assert "'NoneType' object is not callable" in run.messages[TEST]
    assert "stages.0.blocks.0.norm (was BatchNorm2d)" in run.messages[TEST]


def test_nextvit_reparam_passes_once_fixed(runs):
    run = runs("1.0.12")
    assert run.returncode == 0, run.output
    assert run.outcomes == {TEST: "passed"}
