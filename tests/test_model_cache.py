"""The per-worker model cache hands out copies of a build that is bitwise identical to
create + fill_deterministic (timm's init skipped, computed buffers kept), so sharing it
across checks changes no result."""
import pytest
import torch

from harness.models import build
from harness.weights import model_cache
from harness.weights.deterministic import fill_deterministic
from tests.toys import toy_models  # noqa: F401 - registers the toys


@pytest.mark.parametrize("name", ["toy_ok", "levit_128s", "regnetx_002"])
def test_skip_init_build_is_bitwise_identical(name):
    """levit_128s has constructor-computed index buffers; regnetx_002 BN statistics."""
    reference = fill_deterministic(build.create(name), name)
    fast = model_cache.build_deterministic(name)
    assert model_cache.same_state(reference, fast) == []
    x = torch.randn(2, *build.pretrained_cfg(name)["input_size"])
    with torch.no_grad():
        torch.testing.assert_close(fast(x), reference(x), rtol=0, atol=0)


def test_init_functions_are_restored_after_the_build():
    before = torch.nn.init.trunc_normal_
    model_cache.build_deterministic("toy_ok")
    assert torch.nn.init.trunc_normal_ is before
    t = torch.nn.init.normal_(torch.zeros(1000))
    assert t.abs().sum() > 0


def test_cache_builds_once_and_hands_out_independent_copies():
    model_cache.clear()
    start = dict(model_cache.stats)
    a = model_cache.deterministic("toy_ok")
    b = model_cache.deterministic("toy_ok")
    assert model_cache.stats["builds"] - start["builds"] == 1 and model_cache.stats["hits"] - start["hits"] == 1
    assert a is not b and model_cache.same_state(a, b) == []
    with torch.no_grad():
        a.stem.weight.add_(1.0)
    assert model_cache.same_state(a, model_cache.deterministic("toy_ok")) == ["stem.weight"]
