"""The meta_init family on the real releases:

- ``torch.device('meta')``: timm <= 1.0.20 computed drop-path rates with
  ``torch.linspace(...).item()`` in constructors, which cannot run on the meta device
  (vit_tiny_patch16_224: "Tensor.item() cannot be called on meta tensors"); 1.0.21 computes
  them on the CPU (commit 3f58765a, calculate_drop_path_rates).
- ``accelerate.init_empty_weights()`` (parameters on meta, buffers real, as transformers
  builds timm models): 1.0.23-1.0.24 skipped the non-persistent buffer init when a
  parameter was on meta, leaving LeViT's attention_bias_idxs as uninitialized memory
  (timm #2661, fixed in 1.0.25 by always calling reset_parameters), which in turn broke Swin V2:
  its tables are computed on a parameter's device (meta) and copied into the CPU buffers.
"""
from __future__ import annotations

import pytest

from harness.weights.releases import timm_release
from tests.helpers import run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow


def _run(version: str, model: str, variant: str, tmp_path_factory):
    return run_suites(["-m", "meta_init", "--models", model, "-k", variant],
                      tmp_path_factory.mktemp(f"meta-{version}"), [timm_release(version)])


@pytest.mark.parametrize("version, outcome", [("1.0.20", "failed"), ("1.0.21", "passed")])
def test_meta_device_build_needs_1_0_21(version, outcome, tmp_path_factory):
    run = _run(version, "vit_tiny_patch16_224", "meta_to_empty", tmp_path_factory)
    test = "test_meta_init[vit_tiny_patch16_224-meta_to_empty]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert ("create_model under torch.device('meta') raised RuntimeError: Tensor.item() cannot be called on "
                "meta tensors") in run.messages[test]


@pytest.mark.parametrize("version, outcome", [("1.0.24", "failed"), ("1.0.25", "passed")])
def test_accelerate_empty_init_buffers_need_1_0_25(version, outcome, tmp_path_factory):
    run = _run(version, "levit_128s", "accelerate", tmp_path_factory)
    test = "test_meta_init[levit_128s-accelerate]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        message = run.messages[test]
        assert "create_model under accelerate.init_empty_weights(), load_state_dict(assign=True): buffers unlike " \
               "the normal build's (11):" in message
        assert "stages.0.blocks.0.attn.attention_bias_idxs" in message


@pytest.mark.parametrize("version, outcome", [("0.9.16", "passed"), ("1.0.25", "failed")])
def test_accelerate_swinv2_tables_copied_from_a_meta_parameter_since_1_0_25(version, outcome, tmp_path_factory):
    """The other side of the #2661 fix: 1.0.25 always fills the non-persistent buffers, and
    Swin V2 computes its tables on a parameter's device, meta under init_empty_weights, then
    copies them into the CPU buffers (a known issue from 1.0.25 on, shown here without it)."""
    run = run_suites(["-m", "meta_init", "--models", "swinv2_tiny_window8_256", "-k", "accelerate",
                      "--ignore-known-issues"], tmp_path_factory.mktemp(f"swinv2-{version}"), [timm_release(version)])
    test = "test_meta_init[swinv2_tiny_window8_256-accelerate]"
    assert run.outcomes == {test: outcome}, run.output
    if outcome == "failed":
        assert ("create_model under accelerate.init_empty_weights() raised NotImplementedError: Cannot copy out of "
                "meta tensor; no data!") in run.messages[test]
