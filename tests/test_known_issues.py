"""The known-issues registry: matching by model, check, variant and version range, and
the strict-xfail semantics seen end to end through the suites."""
import fnmatch
import functools
import importlib.util
import re

import pytest
import timm

from harness.models.facts import facts_for
from harness.plugin.collection import PACKAGE, ModelCase, package_case
from harness.plugin.parametrize import PARAMETRIZERS
from harness.registry.check_families import CHECK_FAMILIES
from harness.registry.known_issues import KNOWN_ISSUES, KnownIssue, matching_issue
from harness.registry.model_families import family_for
from tests.helpers import ROOT, run_suites

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


# --------------------------------------------------------------------------- the registry itself

def test_every_model_pattern_matches_a_model_of_the_newest_timm():
    """An entry whose pattern matches nothing covers nothing: a typo, or a model timm
    removed (then the entry says historic=True and stays for older releases)."""
    registry = [*timm.list_models(), PACKAGE]  # package-level tests (surface) use the pseudo-model 'timm'
    stale = [(issue.reason[:60], pattern) for issue in KNOWN_ISSUES if not issue.historic
             for pattern in issue.models.split(",") if not fnmatch.filter(registry, pattern.strip())]
    assert stale == [], f"known-issue model patterns matching no model of timm {timm.__version__}: {stale}"


@functools.cache
def _suite_tests() -> tuple[tuple[str, str, str | None], ...]:
    """(test function, parametrizer, check family or None: from each param's marks) per suite
    test (the suite modules are executed once per session, not once per entry and model)."""
    out = []
    for path in sorted((ROOT / "suites").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_suite_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        declared = getattr(module, "pytestmark", [])
        declared = declared if isinstance(declared, list) else [declared]
        module_marks = [m.mark if hasattr(m, "mark") else m for m in declared]
        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn):
                continue
            marks = module_marks + list(getattr(fn, "pytestmark", []))
            cases = next((m.args[0] for m in marks if m.name == "cases"), None)
            family = next((m.name for m in marks if m.name in CHECK_FAMILIES), None)
            if cases is not None:
                out.append((name, cases, family))
    return tuple(out)


BASELINES = ["0.9.16"] + [f"1.0.{i}" for i in range(3, 32)]  # ids a compat run against those releases has


@functools.cache
def _model_ids(name: str, family: str) -> tuple[tuple[str, str], ...]:
    """_ids of a registered model, built once per session: several entries share models (the
    ViT entries), and the patch_size ids cost meta builds per model."""
    return tuple(_ids(_case(name), family))


def _ids(case: ModelCase, family: str) -> list[tuple[str, str]]:
    """(test function, parameter id) of every suite test of ``family`` for one model."""
    out = []
    for test, cases, test_family in _suite_tests():
        if case.model == PACKAGE and not cases.startswith("surface"):
            continue  # the package pseudo-model has only the package-level (surface) tests
        if cases in ("removed", "smoke_scopes"):
            continue  # only collected when they fail; their ids are the smoke set's own
        if cases in ("compat", "compat_outputs", "surface_baseline", "train_checkpoint"):  # one id per baseline
            extra = ["candidate"] if cases == "train_checkpoint" else []
            out += [(test, f"{case.model}-{v}") for v in [*extra, *BASELINES] if test_family == family]
            continue
        if test_family not in (None, family):
            continue  # a suite of another family (params are marked with the suite's family)
        for param in PARAMETRIZERS[cases].make([case], None):
            marked = next((m.name for m in param.marks if m.name in CHECK_FAMILIES), None)
            if (marked or test_family) == family:
                out.append((test, param.id))
    return out


def _case(name: str) -> ModelCase:
    if name == PACKAGE:
        return package_case()
    facts = facts_for(name)
    return ModelCase(name, facts, family_for(name, facts.module), True)


def _unmatched(issue: KnownIssue) -> set[str]:
    """The entry's variant patterns that select no test id of its check family, for the
    test function(s) its ``test`` pattern names, over models matching its patterns."""
    wanted = {v.strip() for v in issue.variant.split(",")}
    registry = sorted([*timm.list_models(), PACKAGE])
    candidates = list(dict.fromkeys(m for p in issue.models.split(",")
                                    for m in fnmatch.filter(registry, p.strip())[:MAX_TRIES]))
    found: set[str] = set()
    for name in candidates:
        for test, pid in _model_ids(name, issue.check):
            if fnmatch.fnmatchcase(test, issue.test):
                found |= {v for v in wanted if fnmatch.fnmatchcase(pid, v)}
        if found == wanted:
            break
    return wanted - found


@pytest.mark.parametrize("issue", KNOWN_ISSUES, ids=[f"{i.check}-{i.models[:40]}" for i in KNOWN_ISSUES])
def test_every_variant_and_test_pattern_matches_a_real_test_id(issue):
    """Each comma-separated ``variant`` pattern (and the ``test`` pattern) selects at least
    one test the suites generate for a model of the entry (ids built by the parametrizers,
    as collection does): a pattern that selects nothing is a typo or a renamed id."""
    if issue.historic:
        pytest.skip("historic entry: its models are not registered in the newest timm")
    missing = _unmatched(issue)
    assert not missing, f"variant patterns {sorted(missing)} (test {issue.test!r}) select no {issue.check} test id " \
                        f"of the models matching {issue.models!r}"


def test_the_registry_check_catches_a_pattern_that_selects_nothing():
    typo = KnownIssue("resnet18", "create", "", reason="r", variant="*-scratch-default,*-scratch-num_clases_7")
    assert _unmatched(typo) == {"*-scratch-num_clases_7"}
    wrong_test = KnownIssue("resnet18", "compat", "", reason="r", variant="*-0.9.16", test="test_compat_pickel")
    assert _unmatched(wrong_test) == {"*-0.9.16"}


MAX_TRIES = 12  # models tried per model pattern (enough for every entry; bounded for CI time)


def test_tightened_matches_do_not_hide_another_failure_of_the_same_test():
    """The ViT pretrained_strict and the BEiT entries name the exact error: a different
    message of the same test (another option, another key in the listing) is not covered."""
    vit = next(i for i in KNOWN_ISSUES if i.check == "pretrained" and i.models.startswith("vit_*"))
    assert re.search(vit.match, "create_model('vit_tiny_patch16_224', pretrained_strict=False, pretrained=True) "
                                "raised TypeError: build_model_with_cfg() got multiple values for keyword argument "
                                "'pretrained_strict'")
    assert not re.search(vit.match, "create_model('vit_tiny_patch16_224', pretrained_strict=False, pretrained=True) "
                                    "raised RuntimeError: Error(s) in loading state_dict: Missing key(s): head.weight")
    beit = next(i for i in KNOWN_ISSUES if i.models.startswith("beit_"))
    listing = ("backbone tensors not loaded from the checkpoint (2):\n  norm.weight: not in the checkpoint (kept its "
               "init value)\n  norm.bias: not in the checkpoint (kept its init value)")
    assert re.search(beit.match, listing)
    more = listing.replace("(2):", "(3):") + "\n  blocks.0.attn.qkv.weight: value differs from the checkpoint"
    assert not re.search(beit.match, more)
