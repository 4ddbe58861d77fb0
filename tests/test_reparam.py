"""The reparam check: discovery finds exactly the models reparameterize_model would touch,
every assertion fails on a toy that plants its bug and passes on the correct toy, and
the suite collects only reparameterizable models. Toys: tests/toys/toy_reparam_models.py."""
from __future__ import annotations

import pytest
import torch

from harness.checks.reparam import check_reparam, check_structure
from harness.models.facts import facts_for
from harness.models.module_tree import module_paths, modules_left_none
from tests.helpers import run_suites
from tests.toys import toy_reparam_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)


def discover(model_name, cache_get=None, cache_set=None):
    """The reparam sites, as the suite reads them (from the cached facts)."""
    return facts_for(model_name, cache_get, cache_set).reparam_sites


@pytest.mark.parametrize("model_name", ["nextvit_small", "repvgg_a0", "fastvit_t8", "mobileone_s0"])
def test_discovery_finds_reparameterizable_models(model_name):
    assert discover(model_name)


def test_discovery_skips_models_with_nothing_to_fuse():
    assert discover("resnet18") == ()


def test_discovery_names_the_sites_and_uses_the_cache():
    store = {}
    sites = discover("toy_reparam_ok", store.get, store.__setitem__)
    assert sites == ("block:RepBlock.reparameterize", "pre_norm:PreNormBlock.reparameterize")
    (key,) = store
    store[key] = {**store[key], "reparam_sites": ["cached:Fake.fuse"]}
    assert discover("toy_reparam_ok", store.get, store.__setitem__) == ("cached:Fake.fuse",)


def test_correct_toy_passes_within_its_own_float32_noise():
    result = check_reparam("toy_reparam_ok", "cpu", SIZE)
    assert result.params_after < result.params_before
    assert result.err_reparam <= result.budget
    check_structure("toy_reparam_ok")


@pytest.mark.parametrize("bug, message", [
    ("drop_branch", r"output after reparameterize_model differs from the float64 reference by .* "
                    r"the float32 model by .*; budget 20 x"),
    ("none_layer", r"forward after reparameterize_model raised TypeError: 'NoneType' object is not callable "
                   r"in pre_norm; reparameterize left None where modules were: pre_norm.norm \(was BatchNorm2d\)"),
    ("adds_params", r"reparameterize_model: parameter count grew from 10,008 to 10,576"),
    ("not_idempotent", r"state_dict changed by a second reparameterize_model \(2\):\n  pre_norm.fc.bias: max abs err .*\n  pre_norm.fc.weight: max abs err"),
    ("noop", r"reparameterize_model changed nothing: no module replaced, added or removed and every state_dict "
             r"tensor unchanged, though 2 module\(s\) have a reparameterization method "
             r"\(block:RepBlock.reparameterize, pre_norm:PreNormBlock.reparameterize\)"),
])
def test_reparam_catches_planted_bug(bug, message):
    with pytest.raises(AssertionError, match=message):
        check_reparam(f"toy_reparam_{bug}", "cpu", SIZE)


@pytest.mark.parametrize("bug, message", [
    ("adds_params", r"parameter count grew"),
    ("noop", r"reparameterize_model changed nothing"),
    ("ok", None),
])
def test_structural_reparam_on_meta(bug, message):
    if message is None:
        check_structure(f"toy_reparam_{bug}")
        return
    with pytest.raises(AssertionError, match=message):
        check_structure(f"toy_reparam_{bug}")


def test_modules_left_none_ignores_replaced_parents():
    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.ReLU()), torch.nn.ReLU())
    before = module_paths(model)
    model[0] = torch.nn.Identity()  # a fuse() replacing a parent: not a None attribute
    model[1] = None
    assert modules_left_none(before, model) == ["1 (was ReLU)"]


def test_suite_collects_only_reparameterizable_models(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_reparam_models", "-m", "reparam",
                      "--models", "toy_reparam_ok,toy_reparam_none_layer,resnet18"], tmp_path)
    assert run.outcomes == {"test_reparam_equivalence[toy_reparam_ok]": "passed",
                            "test_reparam_equivalence[toy_reparam_none_layer]": "failed"}, run.output
    assert "pre_norm.norm (was BatchNorm2d)" in run.messages["test_reparam_equivalence[toy_reparam_none_layer]"]
