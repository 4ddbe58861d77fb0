"""Historic feature-extraction regressions, caught on the timm releases that shipped them
and green on the releases that fixed them (each release installed by harness.weights.releases):

- feature_info reductions: timm 1.0.12 declared davit / efficientformer / metaformer
  (poolformer, convformer, caformer) reductions as 2 for every stage, or 2**(i+1); fixed in
  1.0.13 (commit ab0a70df "fix feature_info.reduction", PR #2369). Caught by the measured stride.
- FeatureGetterNet out_indices: in timm 1.0.7 an index past the last block was silently
  dropped (features_only=True, out_indices=(0, 12) on a 12-block ViT returned one tensor;
  issue #2242, fixed in 1.0.8 by commit 8efdc382), and the indices went through a set(), so
  feature_info.out_indices came out of order ((3, 6, 10) -> (10, 3, 6); commit d2240745 "Fix
  issue where feature out_indices out of order after wrapping with FeatureGetterNet due to use
  of set()", PR #2239, 1.0.8). Shown on DeiT (the same VisionTransformer): vit_tiny's default
  tag is an .npz-routed custom_load tag on these releases, a known issue that fails its
  pretrained-file load first.
- forward_intermediates(stop_early=True): in timm 1.0.15 MaxxVit (and rdnet) applied the final
  norm to the output of the stage it stopped at, a RuntimeError for any stop before the last
  stage; fixed in 1.0.16 (commit 9aedecbb "fix norm at last feat_idx").
"""
from __future__ import annotations

import pytest

from tests.helpers import INSTALLED, release_runs

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

REDUCTION = ["-m", "features", "--models", "poolformer_s12,efficientformer_l1", "-k", "out_indices_default"]
GETTER = ["-m", "features", "--models", "deit_tiny_patch16_224", "-k", "out_indices or prune"]
STOP_EARLY = ["-m", "features", "--models", "coatnet_pico_rw_224", "-k", "stop_early"]
NEWEST = ["-m", "features", "--models", "poolformer_s12,efficientformer_l1,deit_tiny_patch16_224,coatnet_pico_rw_224",
          "-k", "out_indices or prune or stop_early"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return release_runs(tmp_path_factory, "features")


def test_feature_info_reductions_fail_on_1_0_12(runs):
    run = runs("1.0.12", REDUCTION)
    assert run.failed() == {"test_features_out_indices[poolformer_s12-out_indices_default]",
                            "test_features_out_indices[efficientformer_l1-out_indices_default]"}, run.output
    message = run.messages["test_features_out_indices[poolformer_s12-out_indices_default]"]
    assert "output 3: feature_info.reduction() says 2, measured stride 32" in message
    assert "feature_info.reduction() says 16, measured stride 32" in run.messages[
        "test_features_out_indices[efficientformer_l1-out_indices_default]"]


def test_getter_out_indices_fail_on_1_0_7(runs):
    run = runs("1.0.7", GETTER)
    subset, invalid = ("test_features_out_indices[deit_tiny_patch16_224-out_indices_subset]",
                       "test_features_out_indices[deit_tiny_patch16_224-out_indices_invalid]")
    prune = "test_prune_intermediate_layers[deit_tiny_patch16_224]"
    assert run.failed() == {subset, invalid, prune}, run.output
    assert ("feature_info.out_indices is (10, 3, 6) (levels [10, 3, 6]), asked for levels [3, 6, 10]"
            in run.messages[subset])
    assert ("out_indices=(0, 12) (12 levels) was accepted: it built and returned 1 tensor(s) for 2 indices"
            in run.messages[invalid])
    assert "returned {10, 3, 6}, expected the indices to take [3, 6, 10]" in run.messages[prune]


def test_maxxvit_stop_early_fails_on_1_0_15(runs):
    run = runs("1.0.15", STOP_EARLY)
    test = "test_forward_intermediates[coatnet_pico_rw_224-stop_early]"
    assert run.outcomes == {test: "failed"}, run.output
    assert "stop_early=True) raised RuntimeError: Given normalized_shape=[512]" in run.messages[test]


@pytest.mark.parametrize("version, args", [("1.0.13", REDUCTION), ("1.0.8", GETTER), ("1.0.16", STOP_EARLY),
                                           (INSTALLED, NEWEST)])
def test_fixed_releases_pass(runs, version, args):
    run = runs(version, args)
    assert run.returncode == 0 and run.outcomes and set(run.outcomes.values()) == {"passed"}, run.output
