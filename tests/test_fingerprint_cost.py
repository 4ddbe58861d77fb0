"""What makes a model's trace cheap must not change what it records: the meta-device
shortcuts of slow torch functions (harness.checks.fingerprint._META_SHORTCUTS) and the
untraced copies (harness.models.tracing.untraced)."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch.nn import functional as F

from harness.checks import exercise, fingerprint
from harness.models.source_index import SourceIndex
from harness.models.tracing import Recorder, untraced

TIMM_ROOT = Path(timm.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def index() -> SourceIndex:
    return SourceIndex(TIMM_ROOT)


@pytest.mark.parametrize("name", ["test_vit", "test_efficientnet"])
def test_shortcuts_record_the_same_functions(name, index, monkeypatch):
    """test_vit runs layer_norm, gelu, sdpa and trunc_normal_ (clamp_, erfinv_), test_efficientnet
    batch_norm: each shortcut is on the path of one of them (the builds and forwards of the
    create and forward steps; the other steps make the same calls more often)."""
    monkeypatch.setattr(exercise, "FAMILY_STEPS", {k: exercise.FAMILY_STEPS[k] for k in ("create", "forward")})
    fast = fingerprint.trace_model(name, index, TIMM_ROOT)
    monkeypatch.setattr(fingerprint, "_META_SHORTCUTS", ())
    slow = fingerprint.trace_model(name, index, TIMM_ROOT)
    assert not fast["incomplete"] and not slow["incomplete"]
    assert fast["ids"] == slow["ids"]
    assert fast["steps"] == slow["steps"]
    assert fast["errors"] == slow["errors"]


def test_a_shortcut_whose_arguments_do_not_fit_runs_the_real_function():
    x = torch.empty(2, 3, 4, 4, device="meta")
    with fingerprint._fast_meta_ops():
        assert F.batch_norm(x, torch.empty(3, device="meta"), torch.empty(3, device="meta")).shape == x.shape
        with pytest.raises(RuntimeError):
            F.batch_norm(x, torch.empty(5, device="meta"), torch.empty(5, device="meta"))
        with pytest.raises(RuntimeError):
            F.layer_norm(x, (5,))
        q = torch.empty(1, 2, 7, 8, device="meta")
        assert F.scaled_dot_product_attention(q, q, torch.empty(1, 2, 7, 6, device="meta")).shape == (1, 2, 7, 6)
        with pytest.raises(RuntimeError):
            F.scaled_dot_product_attention(q, torch.empty(1, 2, 7, 5, device="meta"), q)
        cpu = torch.full((3,), 5.0)
        assert cpu.clamp_(max=1.0).tolist() == [1.0, 1.0, 1.0]  # off the meta device: torch's own
    assert F.batch_norm.__module__ == "torch.nn.functional" and not hasattr(F.batch_norm, "__wrapped__")


def test_untraced_code_is_not_recorded_and_the_trace_resumes(index):
    from timm.layers import Mlp
    with Recorder(TIMM_ROOT) as rec:
        with untraced():
            Mlp(4, 8)
        Mlp(4, 8)(torch.zeros(1, 4))
    ids = rec.ids(index)
    assert "timm.layers.mlp:Mlp.forward" in ids
    with Recorder(TIMM_ROOT) as rec:
        with untraced():
            Mlp(4, 8)
    assert not rec.ids(index)
