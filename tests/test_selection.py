"""Model selection: patterns, 'all', 'smoke', --exclude, and usage errors."""
import re

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
    run = run_suites(["--models", "smoke,dpn48b", "-m", "onnx", "--collect-only", "--slow"], tmp_path)
    collected = {line.split("::")[-1] for line in run.output.splitlines() if "test_onnx_export[" in line}
    assert "test_onnx_export[dpn48b-dynamo]" in collected, run.output[-2000:]
    assert "test_onnx_export[cspresnet50-torchscript]" in collected
    assert "test_onnx_export[cspresnet50-dynamo]" not in collected


def test_the_slow_scope_runs_only_with_slow(tmp_path):
    """Without --slow the dynamo exports, torch.compile and benchmarks are deselected (not
    vanished: the run records them as deselected) and the summary says so; --slow collects them,
    and so does a run that names them (-m FAMILY, -k)."""
    args = ["--models", "resnet18", "--collect-only"]
    default = run_suites(args, tmp_path / "default")
    ids = {line.split("::")[-1] for line in default.output.splitlines() if "::" in line}
    assert "test_onnx_export[resnet18-torchscript]" in ids, default.output[-2000:]
    assert "test_transform[resnet18-jit_script]" in ids
    assert not {i for i in ids if "dynamo" in i or "compile_" in i or i.startswith("test_benchmark")}, ids
    slow = run_suites([*args, "--slow"], tmp_path / "slow")
    slow_ids = {line.split("::")[-1] for line in slow.output.splitlines() if "::" in line}
    assert {"test_onnx_export[resnet18-dynamo]", "test_transform[resnet18-compile_eager]",
            "test_benchmark[resnet18]"} <= slow_ids, slow.output[-2000:]
    further = {i for i in slow_ids - ids if "global_pool_" in i}
    assert slow_ids - ids == further | {i for i in slow_ids if "dynamo" in i or "compile_" in i
                                        or i.startswith("test_benchmark")}
    # pools: resnet18 has no attention pool, so the first other pool is the one the default builds
    # as the model's own; the further ones are its create/pretrained variants and reset configs
    kept = {re.search(r"-scratch-global_pool_(\w+)\]", i).group(1) for i in ids if re.search(r"-scratch-global_pool_\w", i)}
    assert len(kept) == 1 and further, (kept, further)
    assert {i.split("[")[0] for i in further} == {"test_create_variant", "test_reset_classifier"}
    assert not any(i.endswith(f"global_pool_{pool}]") for pool in kept for i in further)
    named = run_suites(["--models", "resnet18", "-m", "benchmark or golden", "--collect-only"], tmp_path / "named")
    assert "test_benchmark[resnet18]" in named.output, named.output[-2000:]  # -m benchmark asks for the family


def test_the_summary_counts_the_slow_cases_the_run_dropped(tmp_path):
    """The run summary names the slow scope with the number of cases it dropped among those
    -m selects, and says nothing where the run kept them (-m naming the family)."""
    from harness.registry.check_families import CHECK_FAMILIES
    only_onnx = "not (" + " or ".join(f for f in CHECK_FAMILIES if f != "onnx") + ")"  # selects, does not name it
    onnx = run_suites(["--models", "resnet18", "-m", only_onnx], tmp_path / "onnx")
    assert "1 cases of the slow scope are not collected" in onnx.output, onnx.output[-3000:]  # resnet18-dynamo
    kept = run_suites(["--models", "resnet18", "-m", "benchmark or golden"], tmp_path / "kept")
    assert "slow scope" not in kept.output, kept.output[-3000:]
    keyword = run_suites(["--models", "resnet18", "-m", "transforms", "-k", "compile_eager", "--collect-only"],
                         tmp_path / "keyword")
    assert "test_transform[resnet18-compile_eager]" in keyword.output, keyword.output[-2000:]


def test_named_families():
    from harness.plugin.collection import named_families
    assert named_families("benchmark") == {"benchmark"}
    assert named_families("onnx or (golden and not benchmark)") == {"onnx", "golden"}
    assert named_families("not onnx") == set() and named_families("") == set()


def test_slow_reasons():
    from harness.checks.patch_size import patch_cases
    from harness.registry.scopes import describe_slow_scope, slow_reason
    assert slow_reason("onnx", "resnet18-dynamo-reparam") and not slow_reason("onnx", "resnet18-torchscript")
    assert slow_reason("transforms", "resnet18-compile_inductor") and not slow_reason("transforms", "resnet18-fx_trace")
    assert not slow_reason("create", "resnet18-dynamo")  # only the families listed
    cases = patch_cases("vit_base_patch16_clip_224")
    kept = {(c.family, c.tag) for c in cases if not slow_reason("patch_size", repr(c), {"patch_case": c})}
    families = {c.family for c in cases}
    assert {f for f, _ in kept} == families and len(kept) == len(families)  # one tag per checkpoint family
    assert len({c.tag for c in cases}) > len(kept)
    assert "--slow runs it" in describe_slow_scope(3) and describe_slow_scope(3).startswith("3 cases")


def test_further_pools_keep_the_attention_pools_and_the_first_other():
    """The default scope builds the attention pools and the first other discovered pool as the
    model's own; the rest go to the slow scope, for the create variants and the reset configs
    alike (a fixed-pool family has none: its pools are not varied at all)."""
    from harness.models.capabilities import Capabilities
    from harness.models.variants import further_pools, head_variants
    from harness.registry.model_families import ModelFamily
    from harness.registry.scopes import FURTHER_POOL_REASON, slow_reason
    caps = Capabilities(default_pool="token", pools=("avg", "avgmax", "map", "max"), attn_pools=("map",))
    family = ModelFamily("toy")
    assert further_pools(family, caps) == {"avgmax", "max"}
    assert further_pools(ModelFamily("fixed", fixed_pool=True), caps) == frozenset()
    pools = {v.id: v.further for v in head_variants(family, caps) if v.kind == "pool"}
    assert pools == {"global_pool_avg": False, "global_pool_avgmax": True, "global_pool_map": False,
                     "global_pool_max": True}
    further = next(v for v in head_variants(family, caps) if v.id == "global_pool_max")
    assert slow_reason("create", "m-scratch-global_pool_max", {"head_variant": further}) == FURTHER_POOL_REASON
    assert slow_reason("reset_classifier", "m-global_pool_max", {"reset_config": ("c", {}, True)}) == FURTHER_POOL_REASON
    assert slow_reason("reset_classifier", "m-global_pool_avg", {"reset_config": ("c", {}, False)}) == ""
