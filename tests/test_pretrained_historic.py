"""Historic: timm 0.9.16 through 1.0.30 read a ``pretrained_cfg_overlay`` file with the tag's
custom loader whenever its cfg says ``custom_load=True`` (the Google .npz loader), though the
hub file of those tags, what timm downloads by default, is a timm-native safetensors. So the
user's call ``create_model('vit_tiny_patch16_224', pretrained=True,
pretrained_cfg_overlay=dict(file=...))`` with that file raised np.load's ValueError. Fixed in
1.0.31 (resolve_pretrained_cfg resets custom_load when the overlay gives a file). The
pretrained check makes exactly that call (no ``custom_load=False`` of its own), so it fails on
1.0.12 (a registered known issue, shown here with --ignore-known-issues) and passes on the
newest release."""
from __future__ import annotations

import pytest

from harness.weights.releases import timm_release
from tests.helpers import run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

ARGS = ["-m", "pretrained", "--models", "vit_tiny_patch16_224", "-k", "vit_tiny_patch16_224-pretrained-default"]
TEST = "test_create_variant[vit_tiny_patch16_224-pretrained-default]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(version: str | None, *extra: str):
        key = (version, extra)
        if key not in cache:
            path = [timm_release(version)] if version else []
            cache[key] = run_suites([*ARGS, *extra], tmp_path_factory.mktemp(version or "newest"), path)
        return cache[key]
    return run


def test_file_overlay_is_misrouted_to_the_npz_loader_on_1_0_12(runs):
    raw = runs("1.0.12", "--ignore-known-issues")
    assert raw.outcomes == {TEST: "failed"}, raw.output
    assert ("create_model('vit_tiny_patch16_224', pretrained=True) raised ValueError: This file contains "
            "pickled (object) data") in raw.messages[TEST]
    known = runs("1.0.12")
    assert known.outcomes == {TEST: "xfailed"} and known.returncode == 0, known.output
    assert "custom_load=True" in known.messages[TEST]


def test_the_same_call_loads_on_the_newest_release(runs):
    run = runs(None)
    assert run.outcomes == {TEST: "passed"} and run.returncode == 0, run.output
