"""The suites end to end on toy models: ids start with the model name, each test
carries exactly one check-family marker, planted bugs fail with their message, the
summary is printed and written, and CUDA checks skip cleanly without a GPU."""
import pytest
import torch

from tests.helpers import run_suites

PLUGIN = ["-p", "tests.toys.toy_models"]


def test_suites_fail_on_planted_bugs_and_pass_on_the_correct_toy(tmp_path):
    # golden needs recorded files and benchmark only times: both have their own tests; these
    # toys are not scriptable (tests/toys/toy_transform_models.py are, tests/test_transforms.py)
    run = run_suites(PLUGIN + ["--models", "toy_ok,toy_drop_attn_pool,toy_strict_head",
                               "-m", "not golden and not benchmark", "-k", "not jit_script",
                               "--report-dir", str(tmp_path / "reports")], tmp_path)
    assert run.returncode == 1, run.output
    failed = run.failed()
    assert failed == {
        "test_reset_classifier[toy_drop_attn_pool-global_pool_map]",
        "test_reset_classifier[toy_drop_attn_pool-num_classes_0-global_pool_map]",  # the same bug, headless build
        "test_create_variant[toy_strict_head-pretrained-head_]",
    }, run.output
    assert "attn_pool: AttnPool -> None" in run.messages["test_reset_classifier[toy_drop_attn_pool-global_pool_map]"]
    # ids start with the model name: '[toy_ok-...]', or '[toy_ok]' for per-model suites (save_load), or the
    # pseudo-model 'timm' for package-level tests (the surface family's '[timm-warnings_as_errors]')
    assert all(t.split("[")[1].rstrip("]").split("-")[0] in ("toy_ok", "toy_drop_attn_pool", "toy_strict_head", "timm")
               for t in run.outcomes)
    assert {t for t in run.outcomes if "[timm-" in t} == {"test_import[timm-warnings_as_errors]",
                                                          "test_import[timm-deprecated_aliases]"}
    assert "harness summary" in run.output
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "| reset_classifier | " in summary and "toy_strict_head-pretrained-head_" in summary


def test_summary_lists_known_issues_with_their_reason(tmp_path):
    run = run_suites(["-p", "tests.known_issue_plugin", "--models", "toy_nan_output", "-m", "create",
                      "-k", "scratch-default", "--report-dir", str(tmp_path)], tmp_path)
    assert run.returncode == 0, run.output
    assert "KNOWN ISSUE x1: known issue (timm any): planted: NaN in forward" in run.output
    assert "## Known issues" in (tmp_path / "summary.md").read_text()


def test_one_marker_per_test_selects_one_family(tmp_path):
    counts = {}
    for family in ("create", "pretrained", "reset_classifier"):
        run = run_suites(PLUGIN + ["--models", "toy_ok", "-m", family, "--collect-only"], tmp_path)
        assert run.returncode == 0, run.output
        counts[family] = run.output.count("toy_ok")
    # 5 fixed head variants (default, num_classes_0/7, global_pool_, head_) plus what discovery
    # finds on the toy (another pool; pool and in_chans variants run scratch and pretrained only),
    # the entry-kwargs and constructor-kwarg tests (create); reset: default and the discovered
    # pool, each also with num_classes=0
    assert counts == {"create": 9, "pretrained": 13, "reset_classifier": 4}


def test_structural_only_over_max_params(tmp_path):
    run = run_suites(PLUGIN + ["--models", "toy_strict_head", "--max-params", "10", "-k", "pretrained-head_"],
                     tmp_path)
    assert run.outcomes == {"test_create_variant[toy_strict_head-pretrained-head_]": "failed"}
    assert "Unexpected key(s)" in run.messages["test_create_variant[toy_strict_head-pretrained-head_]"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_device_skips_cleanly_without_a_gpu(tmp_path):
    run = run_suites(PLUGIN + ["--models", "toy_ok", "--device", "cuda", "-m", "create"], tmp_path)
    assert run.returncode == 0, run.output
    assert set(run.outcomes.values()) == {"skipped"}
    assert "CUDA is not available" in next(iter(run.messages.values()))
