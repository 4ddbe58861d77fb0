"""Model selection: patterns, 'all', 'smoke', --exclude, and usage errors."""
import pytest
import timm

from harness.models.selection import SelectionError, resolve_models
from harness.registry.smoke import SMOKE_MODELS, in_smoke_scope
from tests.helpers import run_suites

REGISTRY = ["resnet18", "resnet50", "vit_tiny_patch16_224", "vit_so150m_patch16_reg4_map_256", "dpn48b"]


def test_patterns_are_fnmatch_and_ordered_without_duplicates():
    assert resolve_models("resnet*,resnet18,vit_*map*", registry=REGISTRY) == [
        "resnet18", "resnet50", "vit_so150m_patch16_reg4_map_256"]


def test_all_and_exclude():
    assert resolve_models("all", exclude="resnet*,dpn*", registry=REGISTRY) == [
        "vit_tiny_patch16_224", "vit_so150m_patch16_reg4_map_256"]


def test_unknown_pattern_is_an_error_with_a_hint():
    with pytest.raises(SelectionError, match=r"'resnet1\*9' matches no registered model.*Did you mean: resnet18"):
        resolve_models("resnet1*9", registry=REGISTRY)


def test_exclude_that_removes_everything_is_an_error():
    with pytest.raises(SelectionError, match="leaves no model"):
        resolve_models("resnet18", exclude="*", registry=REGISTRY)


def test_smoke_models_are_registered_in_this_timm():
    registered = set(timm.list_models())
    assert [m for m in SMOKE_MODELS if m not in registered] == []


def test_unknown_model_is_a_usage_error_not_an_empty_green_run(tmp_path):
    run = run_suites(["--models", "nosuchmodel*"], tmp_path)
    assert run.returncode == 4, run.output  # pytest's usage-error exit code
    assert "--models pattern 'nosuchmodel*' matches no registered model" in run.output


def test_smoke_scope_curates_costly_families_only():

    assert in_smoke_scope("create", "vit_base_patch16_clip_224-pretrained-default")
    assert in_smoke_scope("onnx", "vit_base_patch16_clip_224-torchscript")
    assert not in_smoke_scope("onnx", "vit_base_patch16_clip_224-dynamo")
    assert in_smoke_scope("onnx", "repvgg_a0-dynamo-reparam")
    assert in_smoke_scope("patch_size", "vit_base_patch16_clip_224.laion2b-open_clip-patch_size_32")
    assert not in_smoke_scope("patch_size", "vit_base_patch16_clip_224.dfn2b-timm-original")


def test_smoke_scopes_apply_only_to_models_the_smoke_token_alone_selected(tmp_path):
    """`smoke,dpn48b`: dpn48b is named, so it gets every onnx case (dynamo included); the other
    smoke models keep the curated subset (no cspresnet50 dynamo export)."""
    run = run_suites(["--models", "smoke,dpn48b", "-m", "onnx", "--collect-only"], tmp_path)
    collected = {line.split("::")[-1] for line in run.output.splitlines() if "test_onnx_export[" in line}
    assert "test_onnx_export[dpn48b-dynamo]" in collected, run.output[-2000:]
    assert "test_onnx_export[cspresnet50-torchscript]" in collected
    assert "test_onnx_export[cspresnet50-dynamo]" not in collected
