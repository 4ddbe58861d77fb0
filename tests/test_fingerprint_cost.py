"""What makes a model's trace cheap must not change what it records: the meta-device
shortcuts of slow torch functions (harness.models.meta_ops.META_SHORTCUTS) and the
untraced copies (harness.models.tracing.untraced)."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch.nn import functional as F

from harness.checks import exercise, fingerprint
from harness.models import meta_ops
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
    fast, slow = _with_and_without_shortcuts(name, index, monkeypatch)
    assert not fast["incomplete"] and not slow["incomplete"]
    assert _same_record(fast, slow)


def _with_and_without_shortcuts(name, index, monkeypatch, shortcuts=None) -> tuple[dict, dict]:
    monkeypatch.setattr(exercise, "FAMILY_STEPS", {k: exercise.FAMILY_STEPS[k] for k in ("create", "forward")})
    if shortcuts is not None:
        monkeypatch.setattr(meta_ops, "META_SHORTCUTS", shortcuts)
    fast = fingerprint.trace_model(name, index, TIMM_ROOT)
    monkeypatch.setattr(meta_ops, "META_SHORTCUTS", ())
    return fast, fingerprint.trace_model(name, index, TIMM_ROOT)


def _same_record(fast: dict, slow: dict) -> bool:
    return fast["ids"] == slow["ids"] and fast["steps"] == slow["steps"] and fast["errors"] == slow["errors"]


def test_a_planted_wrong_shortcut_changes_the_record(index, monkeypatch):
    """The comparison above can fail: a layer_norm answer of the wrong width breaks the ViT's
    next Linear, so the meta forward fails, the step runs again on the CPU, and what it
    records differs from the step with torch's own layer_norm."""
    def narrow(input, *args, **kwargs):
        return torch.empty((*input.shape[:-1], 1), device="meta")
    fast, slow = _with_and_without_shortcuts("test_vit", index, monkeypatch, ((F, "layer_norm", narrow),))
    assert not _same_record(fast, slow)
    assert fast["steps"]["forward:eval"] != slow["steps"]["forward:eval"]


def test_a_shortcut_whose_arguments_do_not_fit_runs_the_real_function():
    x = torch.empty(2, 3, 4, 4, device="meta")
    with meta_ops.fast_meta_ops():
        assert F.batch_norm(x, torch.empty(3, device="meta"), torch.empty(3, device="meta")).shape == x.shape
        with pytest.raises(RuntimeError):
            F.batch_norm(x, torch.empty(5, device="meta"), torch.empty(5, device="meta"))
        with pytest.raises(RuntimeError):
            F.layer_norm(x, (5,))
        q = torch.empty(1, 2, 7, 8, device="meta")
        assert F.scaled_dot_product_attention(q, q, torch.empty(1, 2, 7, 6, device="meta")).shape == (1, 2, 7, 6)
        with pytest.raises(RuntimeError):
            F.scaled_dot_product_attention(q, torch.empty(1, 2, 7, 5, device="meta"), q)
        assert F.gelu(x) is not x and F.gelu(x).shape == x.shape  # out of place: a new tensor
        assert x.clamp_(max=1.0) is x  # in place: the tensor itself
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
