"""The surface family: planted edits of a temp copy of timm (a warning on import, a broken
deprecated alias) fail the import checks; synthetic baseline dumps (a model, a tag, a
public name the candidate lacks) fail the registry / public API checks, a deprecation
mapping covers a removal, a changed pretrained_cfg field is a note; a damaged dump is a
clear failure; the suite's ids use the pseudo-model 'timm'."""
from __future__ import annotations

import copy
import json
import re

import pytest

from harness.checks import surface
from harness.models import build
from harness.registry.test_ids import model_of
from harness.weights import registry_dump
from tests.helpers import patched_timm, run_suites


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> dict:
    return surface.candidate_dump(tmp_path_factory.mktemp("dump"))


def test_dump_holds_models_tags_cfgs_deprecations_aliases_and_names(candidate):
    assert candidate["timm"] == build.timm_version()
    resnet = candidate["models"]["resnet18"]
    assert resnet["module"] == "resnet" and "resnet18.a1_in1k" in resnet["tags"]
    assert resnet["cfgs"]["resnet18.a1_in1k"]["input_size"] == [3, 224, 224]
    assert candidate["deprecated"]["convnext_tiny_in22ft1k"] == "convnext_tiny.fb_in22k_ft_in1k"
    assert "timm.models.layers" in candidate["aliases"] and not candidate["aliases"]["timm.models.layers"]["error"]
    assert "create_model" in candidate["public"]["timm"]["names"] and "layers" in candidate["public"]["timm"]["modules"]
    surface.check_deprecated_aliases(candidate)
    surface.check_registry(candidate, candidate)
    surface.check_public_api(candidate, candidate)


def _baseline(candidate: dict, version: str = "0.0.1") -> dict:
    base = copy.deepcopy(candidate)
    base["timm"] = version
    return base


def test_removed_model_tag_and_name_fail_and_a_mapping_covers_a_removal(candidate):
    base = _baseline(candidate)
    base["models"]["vit_gone_patch16_224"] = {"module": "vision_transformer", "tags": [], "cfgs": {}}
    base["models"]["convnext_tiny_in22ft1k"] = {"module": "convnext", "tags": [], "cfgs": {}}  # deprecated now
    base["models"]["resnet18"]["tags"].append("resnet18.gone_in1k")
    base["models"]["resnet18"]["tags"].append("resnet18")  # a bare name: resolves to the default tag
    base["public"]["timm.layers"]["names"].append("GoneLayer")
    base["public"]["timm.layers"]["modules"].append("gone_module")
    with pytest.raises(AssertionError, match=r"^registry of timm \S+ against timm 0.0.1: models removed without a "
                                             r"deprecation mapping \(1\):\n  vit_gone_patch16_224 \(module "
                                             r"vision_transformer\)\npretrained tags removed without a deprecation "
                                             r"mapping \(1\):\n  resnet18.gone_in1k \(the model now has: resnet18.\w+"):
        surface.check_registry(base, candidate)
    diff = surface.registry_diff(base, candidate)
    assert diff.deprecated == ["convnext_tiny_in22ft1k -> convnext_tiny.fb_in22k_ft_in1k"]
    with pytest.raises(AssertionError, match=r"names removed \(2\):\n  timm.layers.GoneLayer\n  "
                                             r"timm.layers.gone_module \(submodule\)$"):
        surface.check_public_api(base, candidate)
    base["public"]["timm.layers"]["modules"] = candidate["public"]["timm.layers"]["modules"] + ["pos_embed_rel"]
    base["public"]["timm.layers"]["names"].remove("GoneLayer")
    candidate_without = copy.deepcopy(candidate)  # a submodule no longer imported eagerly that still imports
    candidate_without["public"]["timm.layers"]["modules"].remove("pos_embed_rel")
    surface.check_public_api(base, candidate_without)


def test_changed_cfg_fields_are_notes_not_failures(candidate, tmp_path):
    base = _baseline(candidate)
    base["models"]["resnet18"]["cfgs"]["resnet18.a1_in1k"]["crop_pct"] = 0.875
    diff = surface.check_registry(base, candidate)
    assert diff.changed == ["resnet18.a1_in1k: crop_pct 0.875 -> 0.95"]
    note = surface.describe_changes(diff, base, candidate, tmp_path / "registry-diff-0.0.1.md")
    assert note.startswith(f"registry of timm {candidate['timm']} against timm 0.0.1: 1 pretrained_cfg field(s) "
                           f"changed") and "registry-diff-0.0.1.md" in note
    assert "resnet18.a1_in1k: crop_pct 0.875 -> 0.95" in (tmp_path / "registry-diff-0.0.1.md").read_text()


def test_a_damaged_dump_is_refused(candidate, tmp_path):
    path = registry_dump.write(tmp_path / "registry.json", candidate)
    data = json.loads(path.read_text())
    data["models"]["resnet18"]["tags"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(registry_dump.RegistryDumpError, match="does not match its sha256"):
        registry_dump.read(path)
    path.write_text("{not json")
    with pytest.raises(registry_dump.RegistryDumpError, match="unreadable registry dump"):
        registry_dump.read(path)
    with pytest.raises(registry_dump.RegistryDumpError, match="no registry dump"):
        registry_dump.read(tmp_path / "missing.json")


@pytest.mark.parametrize("relpath, old, new, test, message", [
    ("__init__.py", "from .version import __version__ as __version__\n",
     "from .version import __version__ as __version__\nimport warnings as _w\n_w.warn('planted', DeprecationWarning)\n",
     "test_import[timm-warnings_as_errors]",
     r"python -W error -c 'import timm' \(timm \S+\) failed: DeprecationWarning: planted \(raised from File "),
    ("models/layers/__init__.py", "from timm.layers.blur_pool import BlurPool2d",
     "from timm.layers.blur_pool import BlurPool2d, NoSuchPool",
     "test_import[timm-deprecated_aliases]",
     r"deprecated alias modules of timm \S+ that no longer import \(1\):[\s\S]*timm.models.layers: ImportError: "
     r"cannot import name 'NoSuchPool'"),
], ids=["warning_on_import", "broken_alias"])
def test_planted_edits_of_timm_fail_the_import_checks(relpath, old, new, test, message, tmp_path):
    run = run_suites(["-m", "surface", "--models", "resnet18"], tmp_path, [patched_timm(tmp_path, relpath, old, new)])
    assert run.outcomes == {"test_import[timm-warnings_as_errors]": "passed",
                            "test_import[timm-deprecated_aliases]": "passed", test: "failed"}, run.output
    assert re.search(message, run.messages[test]), run.messages[test]


def test_suite_ids_registry_notes_and_a_damaged_baseline(candidate, tmp_path):
    compat = tmp_path / "compat"
    base = _baseline(candidate, "0.0.1")
    base["models"]["resnet18"]["cfgs"]["resnet18.a1_in1k"]["crop_pct"] = 0.875
    registry_dump.write(compat / "0.0.1" / registry_dump.FILENAME, base)
    bad = registry_dump.write(compat / "0.0.2" / registry_dump.FILENAME, _baseline(candidate, "0.0.2"))
    bad.write_text(bad.read_text().replace('"resnet18"', '"resnet18x"', 1))
    (compat / "0.0.1" / "resnet18").mkdir()  # compat artifacts for the selection (not checked here)
    run = run_suites(["-m", "surface", "--models", "resnet18", "--compat-dir", str(compat), "--ignore-known-issues",
                      "--report-dir", str(tmp_path / "reports")], tmp_path)
    assert run.outcomes == {"test_import[timm-warnings_as_errors]": "passed",
                            "test_import[timm-deprecated_aliases]": "passed",
                            "test_registry[timm-0.0.1]": "passed", "test_public_api[timm-0.0.1]": "passed",
                            "test_registry[timm-0.0.2]": "failed", "test_public_api[timm-0.0.2]": "failed"}, run.output
    assert "baseline timm 0.0.2:" in run.messages["test_registry[timm-0.0.2]"]
    assert "does not match its sha256" in run.messages["test_registry[timm-0.0.2]"]
    assert "1 pretrained_cfg field(s) changed" in run.output
    assert "crop_pct 0.875 -> 0.95" in (tmp_path / "reports" / "registry-diff-0.0.1.md").read_text()
    assert {model_of(f"x::t[{t.split('[')[1]}") for t in run.outcomes} == {"timm"}
