"""The known-issues registry: matching by model, check, variant and version range, and
the strict-xfail semantics seen end to end through the suites."""
import pytest

from harness.registry.check_families import CHECK_FAMILIES
from harness.registry.known_issues import KNOWN_ISSUES, KnownIssue, matching_issue
from tests.helpers import run_suites

ISSUE = KnownIssue("hrnet_*", "pretrained", ">=0.9.16,<1.0.3", reason="r", variant="*-pretrained_nonstrict-*")


@pytest.mark.parametrize("model, check, pid, version, hit", [
    ("hrnet_w18_small", "pretrained", "hrnet_w18_small-pretrained_nonstrict-default", "0.9.16", True),
    ("hrnet_w18_small", "pretrained", "hrnet_w18_small-pretrained_nonstrict-default", "1.0.3", False),
    ("hrnet_w18_small", "pretrained", "hrnet_w18_small-pretrained-default", "0.9.16", False),
    ("hrnet_w18_small", "create", "hrnet_w18_small-pretrained_nonstrict-default", "0.9.16", False),
    ("resnet18", "pretrained", "resnet18-pretrained_nonstrict-default", "0.9.16", False),
    ("hrnet_w18_small", "pretrained", "hrnet_w18_small-pretrained_nonstrict-default", "1.0.3.dev0", False),
])
def test_matching(model, check, pid, version, hit):
    assert (matching_issue(model, check, pid, version, registry=(ISSUE,)) is ISSUE) is hit


def test_registry_entries_are_well_formed():
    for issue in KNOWN_ISSUES:
        assert issue.check in CHECK_FAMILIES, issue
        assert len(issue.reason) > 40, f"a known issue needs a real reason: {issue}"
        assert issue.match, f"a known issue must name the error it covers: {issue}"
        matching_issue("x", issue.check, "x", "1.0.0", registry=(issue,))  # version spec parses


def test_known_issue_is_strict_xfail_and_can_be_ignored(tmp_path):
    args = ["-p", "tests.known_issue_plugin", "--models", "toy_nan_output,toy_ok,toy_ignores_num_classes",
            "-m", "create", "-k", "scratch-default or scratch-num_classes_7"]
    run = run_suites(args, tmp_path)
    assert run.outcomes["test_create_variant[toy_nan_output-scratch-default]"] == "xfailed"
    # a known issue that stops failing fails the run
    assert run.outcomes["test_create_variant[toy_ok-scratch-default]"] == "failed"
    assert "XPASS(strict)" in run.messages["test_create_variant[toy_ok-scratch-default]"]
    # a known issue covers only the error it names: another failure still fails
    wrong = "test_create_variant[toy_ignores_num_classes-scratch-num_classes_7]"
    assert run.outcomes[wrong] == "failed"
    assert "known issue expects /some other error/" in run.messages[wrong]
    assert "model.num_classes is 1000, expected 7" in run.messages[wrong]
    assert run.returncode == 1

    ignored = run_suites(args + ["--ignore-known-issues"], tmp_path)
    assert ignored.outcomes["test_create_variant[toy_nan_output-scratch-default]"] == "failed"
    assert ignored.outcomes["test_create_variant[toy_ok-scratch-default]"] == "passed"


PICKLE = KnownIssue("vit_*", "compat", ">=1.0.28", reason="r", test="test_compat_pickle",
                    variant="*-0.*,*-1.0.[0-9],*-1.0.1[0-9],*-1.0.2[0-7]")


@pytest.mark.parametrize("test, pid, hit", [
    ("test_compat_pickle", "vit_tiny_patch16_224-0.9.16", True),
    ("test_compat_pickle", "vit_tiny_patch16_224-1.0.12", True),
    ("test_compat_pickle", "vit_tiny_patch16_224-1.0.28", False),   # baseline already has the attribute
    ("test_compat_pickle", "vit_tiny_patch16_224-1.0.30", False),
    ("test_compat_state_dict", "vit_tiny_patch16_224-0.9.16", False),  # same id, other test: not covered
])
def test_matching_by_test_name_and_baseline(test, pid, hit):
    assert (matching_issue("vit_tiny_patch16_224", "compat", pid, "1.0.31", registry=(PICKLE,),
                           test_name=test) is PICKLE) is hit
