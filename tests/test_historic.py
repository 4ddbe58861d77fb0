"""Historic regressions, caught on the real releases that shipped them and green on
the release that fixed them. Each release is pip-installed (pure Python, --no-deps)
into .cache/timm-releases/<version> and put first on PYTHONPATH for a suites run."""
from __future__ import annotations

import pytest

from harness.weights.releases import RELEASES, timm_release  # noqa: F401 - re-exported for other historic tests
from tests.helpers import run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

MODELS = "vit_tiny_patch16_224,vit_*map*,hrnet_w18_small"
ARGS = ["-m", "reset_classifier or pretrained", "--models", MODELS, "-k", "reset_classifier or -head_"]

MAP_RESET = "test_reset_classifier[vit_tiny_patch16_224-global_pool_map]"
MAP_RESET_DEFAULT_MAP = "test_reset_classifier[vit_so150m_patch16_reg4_map_256-default]"
HRNET_HEAD = "test_create_variant[hrnet_w18_small-pretrained-head_]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(version: str):
        if version not in cache:
            cache[version] = run_suites(ARGS, tmp_path_factory.mktemp(version), [timm_release(version)])
        return cache[version]
    return run


@pytest.mark.parametrize("version", ["1.0.3", "1.0.9"])
def test_vit_map_reset_classifier_fails_where_it_shipped(runs, version):
    run = runs(version)
    for test in (MAP_RESET, MAP_RESET_DEFAULT_MAP):
        assert run.outcomes[test] == "failed", run.output
        assert "pooling configuration changed" in run.messages[test]
        assert "attn_pool: AttentionPoolLatent -> None" in run.messages[test]
    assert run.outcomes["test_reset_classifier[vit_tiny_patch16_224-default]"] == "passed"
    assert run.outcomes[HRNET_HEAD] == "passed"  # fixed in 1.0.3
    # the same dropped attention pool in the headless reset configs (num_classes=0 builds)
    assert run.failed() == {MAP_RESET, MAP_RESET_DEFAULT_MAP,
                            "test_reset_classifier[vit_tiny_patch16_224-num_classes_0-global_pool_map]",
                            "test_reset_classifier[vit_so150m_patch16_reg4_map_256-num_classes_0]"}


def test_hrnet_head_pretrained_fails_on_0_9_16(runs):
    run = runs("0.9.16")
    assert run.outcomes[HRNET_HEAD] == "failed", run.output
    assert "create_model('hrnet_w18_small', head='', pretrained=True) raised RuntimeError" in run.messages[HRNET_HEAD]
    assert "Unexpected key(s) in state_dict" in run.messages[HRNET_HEAD]


def test_all_green_on_1_0_12(runs):
    run = runs("1.0.12")
    assert run.returncode == 0, run.output
    assert run.outcomes[MAP_RESET] == run.outcomes[HRNET_HEAD] == "passed"
    assert run.failed() == set()
