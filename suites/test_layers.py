"""layers: every norm, activation, attention and pooling layer of timm.layers that has a
torch reference (discovered by scanning timm.layers; the reference table is
harness/registry/layer_references.py) matches it on seeded random inputs within the
float64-derived budget, with timm's fast paths on and off (fast_norm; fused_attn vs the
explicit attention path). Ids: '<LayerClass>-<variant>', e.g. 'LayerNorm2d-fast_norm'."""
import pytest

from harness.checks.layers import check_layer
from harness.plugin.collection import layer_cases

pytestmark = pytest.mark.layers


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "layer_case" in metafunc.fixturenames:
        metafunc.parametrize("layer_case", layer_cases(metafunc.config), ids=repr)


def test_layer(layer_case):
    check_layer(layer_case)
