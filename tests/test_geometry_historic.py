"""Historic input-geometry regressions, caught on the timm releases that shipped them and
green on the releases that fixed them (each release installed by harness.weights.releases):

- dynamic_img_size on a non-square model: through timm 1.0.11 ViT, DeiT and EVA resampled
  the position embedding at run time without its old grid, so a model built at a non-square
  img_size assumed a square grid and raised (or, for a grid whose size is a square number,
  mixed up positions); fixed in 1.0.12 (commits 3ae3f442 "Fix positional embedding resampling
  for non-square inputs in ViT", 3c7822c6 deit, eb94efb2 eva). Caught by dynamic_native_HxW.
- set_input_size() on DINOv3: timm 1.0.20 raised AttributeError 'RotaryEmbeddingDinoV3' object
  has no attribute 'update_feat_shape' (issue #2593); fixed in 1.0.21 (commit ef00378d).
"""
from __future__ import annotations

import pytest

from tests.helpers import INSTALLED, release_runs

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

DYNAMIC = ["-m", "geometry", "--models", "deit_tiny_patch16_224,eva02_tiny_patch14_224", "-k", "dynamic_native"]
DINOV3 = ["-m", "geometry", "--models", "vit_small_patch16_dinov3", "-k", "set_input_size"]
NEWEST = ["-m", "geometry", "--models", "deit_tiny_patch16_224,eva02_tiny_patch14_224,vit_small_patch16_dinov3",
          "-k", "dynamic_native or set_input_size"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return release_runs(tmp_path_factory, "geometry")


def test_dynamic_resample_of_a_non_square_grid_fails_on_1_0_11(runs):
    run = runs("1.0.11", DYNAMIC)
    tests = {"test_geometry[deit_tiny_patch16_224-dynamic_native_112x160]",
             "test_geometry[eva02_tiny_patch14_224-dynamic_native_112x168]"}
    assert run.failed() == tests and set(run.outcomes) == tests, run.output
    assert ("create_model('deit_tiny_patch16_224', img_size=(112, 160), dynamic_img_size=True): forward at 112x160 "
            "raised RuntimeError") in run.messages["test_geometry[deit_tiny_patch16_224-dynamic_native_112x160]"]


def test_dinov3_set_input_size_fails_on_1_0_20(runs):
    run = runs("1.0.20", DINOV3)
    test = "test_geometry[vit_small_patch16_dinov3-set_input_size_128x192]"
    assert run.outcomes == {test: "failed"}, run.output
    assert ("set_input_size(img_size=(128, 192)) raised AttributeError: 'RotaryEmbeddingDinoV3' object has no "
            "attribute 'update_feat_shape'") in run.messages[test]


@pytest.mark.parametrize("version, args", [("1.0.12", DYNAMIC), ("1.0.21", DINOV3), (INSTALLED, NEWEST)])
def test_fixed_releases_pass(runs, version, args):
    run = runs(version, args)
    assert run.returncode == 0 and run.outcomes and set(run.outcomes.values()) == {"passed"}, run.output
