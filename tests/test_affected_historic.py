"""Change-aware selection on real adjacent timm releases.

timm 1.0.23 moved the Swin relative-position buffers into ``reset_parameters`` and skipped
it on the meta device (``if not self.proj.weight.is_meta``), which left the buffers empty
under accelerate's meta init (``IndexError: index 1841 is out of bounds``, pinned by
downstream users as "timm 1.0.24 introduced a regression in Swin Transformer's relative
position bias handling"); 1.0.25 fixed it (commit 41754f29, "Fix #2661 ... don't skip
reset_parameters/init when meta device detected"). The selection must pick Swin for both
the release that broke it and the one that fixed it, and its fingerprint of the buggy
release must be the CPU's path (which runs reset_parameters), not the meta device's.
1.0.24 itself changed one pretrained cfg (a ViT tag removed) and a deprecated import shim:
only that ViT is affected.

Releases are installed into .cache/timm-releases and fingerprints cached under
.cache/fingerprints, so only the first run traces (a few minutes)."""
from __future__ import annotations

import pytest

from harness.checks import affected
from harness.checks.fingerprint_store import Store, resolve_tree

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

SWIN = "swin_tiny_patch4_window7_224"
ATTN_INIT = "timm.models.swin_transformer:WindowAttention.__init__"


def _functions(result, model: str) -> set[str]:
    return {f for r in result.affected.get(model, []) if r.kind == "code" for f in r.functions}


def test_the_release_that_broke_swin_meta_init_selects_swin():
    result = affected.compute("1.0.22", "1.0.23", SWIN)
    assert ATTN_INIT in _functions(result, SWIN), result.affected


def test_the_release_that_fixed_it_selects_swin_and_the_buggy_trace_is_the_cpus():
    result = affected.compute("1.0.24", "1.0.25", SWIN)
    assert {ATTN_INIT, "timm.models.swin_transformer:SwinTransformerBlock.__init__",
            "timm.models.swin_transformer:SwinTransformer.__init__"} <= _functions(result, SWIN)
    record = Store(resolve_tree("1.0.24")).records()[SWIN]
    assert record["device"] == "cpu" and ATTN_INIT in record["meta_sensitive"]
    # on meta 1.0.24 skips reset_parameters: a meta trace would not know Swin runs it
    assert "timm.models.swin_transformer:WindowAttention.reset_parameters" in record["ids"]


def test_a_release_that_changed_one_cfg_selects_that_model_only():
    result = affected.compute("1.0.23", "1.0.24", "vit_base_patch16_384,vit_base_patch16_224,resnet18")
    assert list(result.affected) == ["vit_base_patch16_384"]
    [reason] = result.affected["vit_base_patch16_384"]
    assert reason.kind == "cfg" and "tag augreg2_in21k_ft_in1k removed" in reason.detail
