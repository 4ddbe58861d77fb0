"""Nothing vanishes silently: a smoke model timm no longer registers and a smoke-scope
pattern that selects nothing fail; the expected-status gate fails on an expected pass that is
now missing or skipped (and tells a deselected test from a vanished one, under xdist too);
the summary lists models x families that collected nothing, with the reason; a meta-device
forward that raises is a failure unless it is a meta-device limitation."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from harness.models import build
from harness.models.discovery import patch_discovery
from harness.reports import expected_status
from harness.reports.results import Results, TestResult, load
from tests.helpers import run_suites


def test_a_removed_smoke_model_and_an_empty_smoke_scope_fail(tmp_path):
    run = run_suites(["-p", "tests.smoke_plugin", "--models", "smoke", "-m", "create or onnx",
                      "-k", "toy_ok-scratch-default or test_model_registered or test_smoke_scope"], tmp_path)
    assert run.outcomes == {"test_create_variant[toy_ok-scratch-default]": "passed",
                            "test_model_registered[toy_retired_model]": "failed",
                            "test_smoke_scope_selects[toy_ok-exporter_renamed]": "failed"}, run.output
    assert ("model removed: toy_retired_model is in the smoke set (harness/registry/smoke.py SMOKE_MODELS) but "
            "timm") in run.messages["test_model_registered[toy_retired_model]"]
    assert ("the onnx smoke scope pattern 'toy_ok-exporter_renamed' (harness/registry/smoke.py SMOKE_SCOPES) "
            "selects no onnx test") in run.messages["test_smoke_scope_selects[toy_ok-exporter_renamed]"]
    assert run.returncode == 1


def _result(test: str, outcome: str, message: str = "") -> TestResult:
    return TestResult(test, test.split("[")[1].split("-")[0], "create", outcome, message)


T = "suites/test_create.py::test_create_variant[toy_ok-scratch-{}]"


def test_expected_status_fails_on_an_expected_pass_now_missing_or_skipped():
    results = Results({T.format("default"): _result(T.format("default"), "passed"),
                       T.format("head_"): _result(T.format("head_"), "skipped", "a reason")},
                      {"models": ["toy_ok"], "files": ["suites/test_create.py"],
                       "deselected": [T.format("num_classes_0")]})
    expected = {T.format(v): "passed" for v in ("default", "head_", "num_classes_0", "num_classes_7")}
    expected["suites/test_create.py::test_create_variant[resnet18-scratch-default]"] = "passed"  # not selected
    expected["suites/test_reparam.py::test_reparam_equivalence[toy_ok]"] = "passed"  # file not collected
    mm = expected_status.compare(expected, results)
    assert mm.failed
    assert mm.missing == [(T.format("num_classes_7"), "passed")]
    assert mm.now_skipped == [(T.format("head_"), "a reason")]
    assert mm.not_run == 3  # deselected, model not selected, suite file not collected
    text = mm.render("status.json")
    assert "MISSING (1): expected passed, no longer collected" in text and "NOW SKIPPED (1)" in text
    # a results file without the run's selection (older harness) compares as before
    old = copy.deepcopy(results)
    old.meta = {}
    assert expected_status.compare({T.format("num_classes_7"): "passed"}, old).missing == []


def test_results_record_what_was_deselected_under_xdist(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_models", "--models", "toy_ok", "-m", "create", "-k", "scratch-default",
                      "-n", "2", "--report-dir", str(tmp_path / "reports")], tmp_path)
    assert run.returncode == 0, run.output
    meta = load(tmp_path / "reports" / "results.json").meta
    assert meta["models"] == ["toy_ok"] and "suites/test_create.py" in meta["files"]
    assert T.format("num_classes_7") in meta["deselected"]  # by -k, on the workers
    assert "suites/test_create.py::test_create_variant[toy_ok-pretrained-default]" in meta["deselected"]  # by -m
    vanished = "suites/test_create.py::test_create_variant[toy_ok-scratch-head_renamed]"
    status = {T.format("default"): "passed", T.format("num_classes_7"): "passed", vanished: "passed"}
    mm = expected_status.compare(status, load(tmp_path / "reports" / "results.json"))
    assert mm.missing == [(vanished, "passed")] and mm.not_run == 1


def test_summary_lists_families_that_collected_nothing_for_a_model(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_models", "-p", "tests.toys.toy_reparam_models", "-m", "create or reparam",
                      "--models", "toy_ok,toy_reparam_ok", "-k", "scratch-default or reparam_equivalence",
                      "--report-dir", str(tmp_path)], tmp_path)
    assert run.returncode == 0, run.output
    assert "NOT APPLICABLE reparam x1: no module has fuse / reparameterize / switch_to_deploy" in run.output
    assert "| toy_ok | reparam | no module has fuse" in (tmp_path / "summary.md").read_text()


class _Item(nn.Module):
    def forward(self, x):
        return x * x.sum().item()


class _Broken(nn.Module):
    def forward(self, x):
        raise TypeError("forward() got an unexpected keyword argument")


def test_meta_forward_tells_a_meta_limitation_from_a_failure():
    x = torch.empty(2, 3, device="meta")
    assert build.meta_forward(nn.Identity(), x).shape == (2, 3)
    assert build.meta_forward(_Item(), x) is None  # .item() on meta: structural only
    with pytest.raises(AssertionError, match=r"forward on the meta device raised TypeError: forward\(\) got an "
                                             r"unexpected keyword argument"):
        build.meta_forward(_Broken(), x)
    assert build.is_meta_limitation(NotImplementedError("aten::_unique2 has no Meta kernel"))
    assert not build.is_meta_limitation(AssertionError("Input height (128) doesn't match model (224)."))


@pytest.mark.parametrize("model, reason", [
    ("vit_tiny_patch16_224", ""),
    ("resnet18", "its module is not a patch-size module"),
    ("vit_small_r26_s32_224", "its module is not a patch-size module"),  # vision_transformer_hybrid
    ("vit_tiny_patch16_dinov3_qkvb", "not a plain patch-embedding model: no absolute position embedding"),
])
def test_patch_discovery_reads_the_model_and_says_why_not(model, reason):
    found = patch_discovery(model)
    assert found.reason.startswith(reason) if reason else (found.geometry is not None and found.reason == "")
