"""Change-aware selection without tracing subprocesses: the tracer on the importable timm,
the rule (harness.checks.fingerprint_diff) on planted fingerprints, the selection tokens,
'previous', and how arguments are described. The end-to-end tests on copies of timm are in
tests/test_affected_e2e.py."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import timm
import torch

from harness.checks.fingerprint import describe
from harness.checks.fingerprint_diff import Side, brute_force_reasons, reasons_for
from harness.models.selection import SelectionError, expand_tokens, resolve_models, smoke_only
from harness.models.source_index import SourceIndex
from harness.models.tracing import Recorder
from harness.weights.releases import ReleaseError, previous_release
from tests.test_source_index import write_tree

TIMM_ROOT = Path(timm.__file__).resolve().parent.parent


# ---------------------------------------------------------------------- the tracer

def test_recorder_sees_the_timm_functions_that_ran_and_nothing_else():
    from timm.layers import Mlp
    with Recorder(TIMM_ROOT) as rec:
        Mlp(4, 8)(torch.zeros(1, 4))
    ids = rec.ids(SourceIndex(TIMM_ROOT))
    assert {"timm.layers.mlp:Mlp.__init__", "timm.layers.mlp:Mlp.forward"} <= ids
    assert "timm.layers.mlp:GluMlp.forward" not in ids
    assert all(i.startswith("timm.") for i in ids)


def test_recorder_records_inherited_methods_per_receiver_class():
    """PatchEmbed.__init__ running for a PatchEmbedWithSize: a later override in the subclass
    must change the fingerprint, so the dispatch is recorded."""
    from timm.layers.patch_embed import PatchEmbedWithSize
    with Recorder(TIMM_ROOT) as rec:
        PatchEmbedWithSize(img_size=32, patch_size=8, embed_dim=16)
    ids = rec.ids(SourceIndex(TIMM_ROOT))
    assert "timm.layers.patch_embed:PatchEmbed.__init__" in ids
    assert "timm.layers.patch_embed:PatchEmbedWithSize~_init_img_size" in ids


def test_recorder_restores_a_previous_trace_function():
    import sys
    seen = []

    def outer(frame, event, arg):
        seen.append(event)
        return None
    sys.settrace(outer)
    try:
        with Recorder(TIMM_ROOT):
            pass
        assert sys.gettrace() is outer
    finally:
        sys.settrace(None)


# ---------------------------------------------------------------------- the rule

ENTRY = {"entrypoint": "timm.models.toy:a", "cfgs": {"": {"input_size": [3, 32, 32]}},
         "build": {"calls": [{"variant": "a", "model_cfg": {"depth": 2}}], "error": ""}}


def record(ids: list[str], step: str = "create:default", **extra) -> dict:
    return {"model": "a", "ids": ids, "steps": {step: list(range(len(ids)))}, "incomplete": "", **extra}


def sides(tmp_path, edits=None, base_models=None, cand_models=None, base_traces=None, cand_traces=None):
    base = Side("base", SourceIndex(write_tree(tmp_path / "a")), base_models or {"a": ENTRY}, base_traces or {})
    cand = Side("cand", SourceIndex(write_tree(tmp_path / "b", edits)), cand_models or {"a": ENTRY},
                cand_traces or {})
    return base, cand


FORWARD = ["timm.layers.mlp:Mlp.forward", "timm.models.toy:_create"]
NEUTRAL = {"timm/layers/mlp.py": ("        x = self.fc1(x)\n", "        x = x\n        x = self.fc1(x)\n")}


def test_unchanged_is_not_affected(tmp_path):
    base, cand = sides(tmp_path, base_traces={"a": record(FORWARD)})
    assert reasons_for("a", base, cand) == []


def test_a_changed_function_it_ran_affects_it_and_names_function_and_family(tmp_path):
    base, cand = sides(tmp_path, NEUTRAL, base_traces={"a": record(FORWARD, step="reset_classifier:default")})
    [reason] = reasons_for("a", base, cand)
    assert reason.kind == "code" and reason.functions == ("timm.layers.mlp:Mlp.forward",)
    assert "timm.layers.mlp:Mlp.forward changed (reset_classifier)" in reason.detail


def test_a_changed_function_it_did_not_run_does_not(tmp_path):
    base, cand = sides(tmp_path, NEUTRAL, base_traces={"a": record(["timm.models.toy:_create"])})
    assert reasons_for("a", base, cand) == []


def test_a_vanished_function_affects_it(tmp_path):
    edits = {"timm/models/toy.py": ("def unrelated():\n    return 1\n", "")}
    base, cand = sides(tmp_path, edits, base_traces={"a": record(["timm.models.toy:unrelated"])})
    [reason] = reasons_for("a", base, cand)
    assert "timm.models.toy:unrelated vanished" in reason.detail


def test_cfg_kwargs_entrypoint_changes_each_affect_it(tmp_path):
    cfg = {**ENTRY, "cfgs": {"": {"input_size": [3, 64, 64]}, "new_tag": {}}}
    kwargs = {**ENTRY, "build": {"calls": [{"variant": "a", "model_cfg": {"depth": 3}}], "error": ""}}
    entry = {**ENTRY, "entrypoint": "timm.models.other:a"}
    for cand_entry, kind, text in ((cfg, "cfg", "tag new_tag added; (default): input_size"),
                                   (kwargs, "kwargs", "build_model_with_cfg arguments changed: model_cfg"),
                                   (entry, "entrypoint", "timm.models.toy:a -> timm.models.other:a")):
        base, cand = sides(tmp_path, cand_models={"a": cand_entry}, base_traces={"a": record(FORWARD)})
        [reason] = reasons_for("a", base, cand)
        assert (reason.kind, text in reason.detail) == (kind, True), reason


def test_new_models_and_missing_fingerprints_are_affected(tmp_path):
    base, cand = sides(tmp_path, cand_models={"a": ENTRY, "b": ENTRY}, base_traces={})
    assert [r.kind for r in reasons_for("b", base, cand)] == ["new"]
    assert [r.kind for r in reasons_for("a", base, cand)] == ["unknown"]  # never traced: not silently unaffected
    base, cand = sides(tmp_path, base_traces={"a": {**record(FORWARD), "incomplete": "worker died"}})
    [reason] = reasons_for("a", base, cand)
    assert reason.kind == "unknown" and "worker died" in reason.detail


def test_the_candidate_trace_adds_what_only_the_candidate_runs(tmp_path):
    """Symmetric mode: a function only the candidate runs, changed from the baseline's."""
    base, cand = sides(tmp_path, NEUTRAL, base_traces={"a": record(["timm.models.toy:_create"])},
                       cand_traces={"a": record(FORWARD)})
    assert reasons_for("a", base, cand, symmetric=False) == []
    [reason] = reasons_for("a", base, cand)
    assert reason.kind == "code" and "runs on cand" in reason.detail


def test_brute_force_compares_both_traces_step_by_step(tmp_path):
    base, cand = sides(tmp_path, NEUTRAL, base_traces={"a": record(FORWARD)}, cand_traces={"a": record(FORWARD)})
    assert [r.functions for r in brute_force_reasons("a", base, cand)] == [("timm.layers.mlp:Mlp.forward",)]
    base, cand = sides(tmp_path, base_traces={"a": record(FORWARD)}, cand_traces={"a": record(FORWARD)})
    assert brute_force_reasons("a", base, cand) == []


# ---------------------------------------------------------------------- selection

REGISTRY = ["resnet18", "resnet50", "vit_tiny_patch16_224", "convnext_atto"]


def test_affected_token_is_resolved_by_the_callers_function():
    picked = resolve_models("resnet18,affected:1.0.30", registry=REGISTRY,
                            affected=lambda spec: ["convnext_atto", "not_registered"] if spec == "1.0.30" else [])
    assert picked == ["resnet18", "convnext_atto"]


def test_affected_without_a_resolver_or_spec_is_a_clear_error():
    with pytest.raises(SelectionError, match="affected:SPEC is resolved by the suites"):
        resolve_models("affected:1.0.30", registry=REGISTRY)
    with pytest.raises(SelectionError, match="needs a SPEC"):
        resolve_models("affected:", registry=REGISTRY, affected=lambda s: [])


def test_nothing_affected_is_an_error_not_an_empty_green_run():
    with pytest.raises(SelectionError, match="no model is affected"):
        resolve_models("affected:1.0.30", registry=REGISTRY, affected=lambda s: [])


def test_smoke_scopes_apply_to_models_only_smoke_selected():
    registry = ["resnet18", "convnext_atto", "vit_tiny_patch16_224"]
    expanded = expand_tokens("smoke,affected:x", registry, lambda s: ["convnext_atto"])
    assert smoke_only(expanded) == {"resnet18", "vit_tiny_patch16_224"}


def test_previous_is_the_newest_older_final_release():
    versions = ["1.0.31", "1.0.30", "1.0.30rc1", "1.0.29", "0.9.16"]
    assert previous_release("1.0.31", versions) == "1.0.30"
    assert previous_release("1.0.32.dev0", versions) == "1.0.31"
    with pytest.raises(ReleaseError, match="no timm release older than 0.9.16"):
        previous_release("0.9.16", versions)


# ---------------------------------------------------------------------- describing kwargs

def test_describe_is_stable_and_free_of_addresses():
    from timm.layers import Mlp
    from timm.models.byobnet import ByoBlockCfg
    value = {"b": functools.partial(Mlp, act_layer=torch.nn.GELU), "a": ByoBlockCfg(type="basic", d=2, c=8),
             "obj": object(), "dtype": torch.float32}
    text = repr(describe(value))
    assert " at 0x" not in text
    assert describe(value) == describe(dict(value))
    assert describe(value)["b"]["partial"] == "obj:timm.layers.mlp:Mlp"
    assert describe(value)["a"]["dataclass"] == "timm.models.byobnet:ByoBlockCfg"


# ---------------------------------------------------------------------- where a trace runs

class _FakeIndex:
    """Locates like the real index; flags chosen functions as looking at the meta device."""

    def __init__(self, sensitive: set[str]):
        self.real, self.sensitive = SourceIndex(TIMM_ROOT), sensitive

    def __getattr__(self, name):
        return getattr(self.real, name)

    def meta_sensitive(self, fid: str) -> bool:
        return fid in self.sensitive


def _trace_with(monkeypatch, steps, param_count: int, sensitive=()):
    from harness.checks import exercise, fingerprint
    from harness.models.facts import ModelFacts

    monkeypatch.setattr(fingerprint.facts, "gather", lambda name: ModelFacts(name, "timm.models.resnet",
                                                                             param_count, (3, 32, 32)))
    monkeypatch.setattr(exercise, "steps_for", lambda subject: steps)
    monkeypatch.setattr(exercise.Subject, "model", lambda self, device: None)
    return fingerprint.trace_model("resnet18", _FakeIndex(set(sensitive)), TIMM_ROOT)


def _mlp_step(devices: list):
    def step(subject, device):
        from timm.layers import Mlp
        devices.append(device)
        Mlp(4, 8, device=device)
    return step


def test_a_step_that_fails_on_meta_runs_again_on_the_cpu_for_numeric_models(monkeypatch):
    devices = []

    def fails_on_meta(subject, device):
        devices.append(device)
        if device == "meta":
            raise RuntimeError("no meta kernel")
    record = _trace_with(monkeypatch, {"forward:eval": fails_on_meta, "create:default": _mlp_step([])}, 10)
    assert devices == ["meta", "cpu"] and record["cpu_steps"] == ["forward:eval"] and record["errors"] == {}
    devices.clear()
    record = _trace_with(monkeypatch, {"forward:eval": fails_on_meta}, 10 ** 9)  # structural: meta is the check's path
    assert devices == ["meta"] and record["errors"] == {"forward:eval": "RuntimeError: no meta kernel"}


def test_a_meta_sensitive_function_sends_every_step_to_the_cpu(monkeypatch):
    devices = []
    record = _trace_with(monkeypatch, {"create:default": _mlp_step(devices)}, 10,
                         sensitive={"timm.layers.mlp:Mlp.__init__"})
    assert devices == ["meta", "cpu"]
    assert record["device"] == "cpu" and record["meta_sensitive"] == ["timm.layers.mlp:Mlp.__init__"]
    assert "timm.layers.mlp:Mlp.__init__" in record["ids"]
    devices.clear()
    record = _trace_with(monkeypatch, {"create:default": _mlp_step(devices)}, 10 ** 9,
                         sensitive={"timm.layers.mlp:Mlp.__init__"})
    assert devices == ["meta"] and record["device"] == "meta"


# ---------------------------------------------------------------------- the store

def test_a_worker_that_dies_or_hangs_leaves_that_model_unknown_and_the_rest_go_on(tmp_path):
    """The store traces in subprocesses: a model that kills its worker (os._exit in the
    constructor) or runs past the per-model timeout is recorded incomplete, the worker is
    restarted on the remaining models, and the rule then calls those models 'unknown'."""
    from harness.checks.fingerprint_store import Store, resolve_tree

    store = Store(resolve_tree("installed"), base=tmp_path, extra_modules=("tests.toys.toy_fingerprint_models",))
    names = ["toy_fp_exit", "toy_fp_hang", "toy_fp_fine"]
    records = store.traces(names, timeout=5)
    assert set(records) == set(names)
    assert "worker died (exit 3)" in records["toy_fp_exit"]["incomplete"]
    assert "longer than 5 s" in records["toy_fp_hang"]["incomplete"]
    assert records["toy_fp_fine"]["incomplete"] == ""
    assert "timm.layers.mlp:Mlp.forward" in records["toy_fp_fine"]["ids"]
    assert store.traces(names) == records  # resumable: nothing traced twice
    side = Side("toys", store.index(), store.models(names), records)
    assert [r.kind for r in reasons_for("toy_fp_exit", side, side)] == ["unknown"]
    assert reasons_for("toy_fp_fine", side, side) == []
