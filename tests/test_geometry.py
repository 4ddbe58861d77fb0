"""The geometry check family: discovery reads the size contracts a model declares, every
relation fails on a toy that plants its bug (including H and W swapped) with a message
naming what differed, the correct toys pass on the CPU and on the meta device, and the
suite collects the declared cases. Toys: tests/toys/toy_geometry_models.py."""
from __future__ import annotations

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from harness.checks import geometry
from harness.checks.pretrained import make_source
from harness.models.facts import facts_for
from harness.models.input_geometry import accepts_kwarg, candidate_sizes, odd_size
from harness.registry import model_families
from tests.helpers import run_suites
from tests.toys import toy_geometry_models  # noqa: F401 - registers the toys

VIT_CASES = ["img_size_16x24", "pos_embed_16x24", "dynamic_native_16x24", "dynamic_16x24", "dynamic_pad_19x25",
             "set_input_size_16x24"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("geometry-sources")


def run_case(name: str, case: str, workdir, device: str = "cpu") -> None:
    facts = facts_for(name)
    source = make_source(name, device, workdir, facts.input_size)
    ref = geometry.reference(name, device, facts.geometry, source.overlay(device), source.state_dict,
                             str(source.files.get("safetensors", "meta")))
    geometry.check_geometry(ref, case)


def test_discovery_reads_the_size_contracts():
    g = facts_for("toy_geom_ok").geometry
    assert g.kwargs == ("img_size", "dynamic_img_size", "dynamic_img_pad") and g.set_input_size
    assert (g.stride, g.size, g.pos_embed, g.resamples_on_load) == (8, (16, 24), (1, 4, 4), True)
    assert geometry.geometry_cases(g) == VIT_CASES
    cnn = facts_for("toy_geom_cnn_ok").geometry
    assert cnn.free_size and geometry.geometry_cases(cnn) == ["input_16x24", "input_odd_17x25"]


def test_kwargs_are_found_through_subclasses_that_pass_kwargs_on():
    from timm.models.deit import VisionTransformerDistilled
    assert accepts_kwarg(VisionTransformerDistilled, "dynamic_img_size")
    assert not accepts_kwarg(toy_geometry_models.ToyGeomCNN, "img_size")


def test_sizes_are_non_square_multiples_and_odd_sizes_are_not():
    sizes = candidate_sizes((224, 224), 16)
    assert sizes[0] == (112, 160) and all(h < w and h % 16 == 0 == w % 16 for h, w in sizes)
    h, w = odd_size((112, 160), 16)
    assert h % 16 and w % 16


def test_resample_definition_agrees_with_timm_on_a_non_square_grid():
    """The independent definition and timm 1.0.31's resample_abs_pos_embed are the same
    function (so the check measures timm's loaders, not a disagreement of definitions)."""
    pos = torch.randn(1, 1 + 6 * 6, 8, generator=torch.Generator().manual_seed(0))
    ours = geometry.resample_definition(pos, (6, 6), (3, 5), 1)
    theirs = resample_abs_pos_embed(pos, new_size=(3, 5), old_size=(6, 6), num_prefix_tokens=1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert not torch.allclose(ours[:, 1:], geometry.resample_definition(pos, (6, 6), (5, 3), 1)[:, 1:])


@pytest.mark.parametrize("case", VIT_CASES)
def test_correct_vit_toy_passes(case, workdir):
    run_case("toy_geom_ok", case, workdir)


@pytest.mark.parametrize("case", ["input_16x24", "input_odd_17x25"])
def test_correct_cnn_toy_passes(case, workdir):
    run_case("toy_geom_cnn_ok", case, workdir)


PLANTED = [
    ("toy_geom_square_resample", "dynamic_native_16x24",
     r"create_model\('toy_geom_square_resample', img_size=\(16, 24\), dynamic_img_size=True\): forward at 16x24 "
     r"raised RuntimeError"),
    ("toy_geom_dynamic_swap", "dynamic_16x24",
     r"dynamic_img_size=True\) \(native 32x32\) fed 16x24 differs from the static model built at img_size=\(16, 24\): "
     r"max abs err .*, budget 20 x"),
    ("toy_geom_dynamic_swap", "dynamic_native_16x24", r"at its own size 16x24 differs from the static model"),
    ("toy_geom_grid_swap", "pos_embed_16x24",
     r"not the checkpoint's 4x4 grid resampled to 2x3 \(bicubic, antialias\): .*; it is the resample to 3x2 "
     r"\(H and W swapped\)"),
    ("toy_geom_grid_swap", "dynamic_16x24", r"fed 16x24 differs from the static model built at img_size=\(16, 24\)"),
    ("toy_geom_bilinear_load", "pos_embed_16x24",
     r"not the checkpoint's 4x4 grid resampled to 2x3 \(bicubic, antialias\)"),
    ("toy_geom_set_input_swap", "set_input_size_16x24",
     r"after set_input_size\(img_size=\(16, 24\)\) differs from the static model built at img_size=\(16, 24\)"),
    ("toy_geom_pad_topleft", "dynamic_pad_19x25",
     r"fed 19x25 \(padded inside by 5 rows, 7 columns\) vs the same model fed the input zero-padded right and "
     r"bottom to 24x32 differs"),
    ("toy_geom_cnn_transposed", "input_16x24",
     r"forward_features map is 6x4 for a 16x24 input; the 16x16 and 24x24 inputs give 4 and 6 rows/columns, so "
     r"\(H, W\) should give 4x6"),
    ("toy_geom_cnn_transposed", "input_odd_17x25", r"map is 7x5 for a 17x25 input.*should give 5x7"),
]


@pytest.mark.parametrize("name, case, message", PLANTED, ids=[f"{p[0]}-{p[1]}" for p in PLANTED])
def test_planted_bug_fails_with_what_differed(name, case, message, workdir):
    with pytest.raises(AssertionError, match=message):
        run_case(name, case, workdir)


@pytest.mark.parametrize("case", VIT_CASES)
def test_structural_checks_pass_on_meta(case, workdir):
    run_case("toy_geom_ok", case, workdir, device="meta")


@pytest.mark.parametrize("name, case, message", [
    ("toy_geom_cnn_transposed", "input_16x24", r"map is 6x4 for a 16x24 input"),
    ("toy_geom_square_resample", "dynamic_native_16x24", r"forward at 16x24 raised RuntimeError"),
])
def test_structural_checks_on_meta_catch_shape_bugs(name, case, message, workdir):
    with pytest.raises(AssertionError, match=message):
        run_case(name, case, workdir, device="meta")


def test_exceptions_skip_with_their_reason():
    assert model_families.geometry_exception("swin_tiny_patch4_window7_224", "dynamic") is not None
    assert model_families.geometry_exception("swin_tiny_patch4_window7_224", "img_size") is None
    assert model_families.load_interpolation("flexivit_small") == ("bilinear", False)
    assert model_families.load_interpolation("vit_tiny_patch16_224") == ("bicubic", True)


def test_suite_collects_the_declared_cases_with_model_first_ids(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_geometry_models", "-m", "geometry",
                      "--models", "toy_geom_ok,toy_geom_cnn_transposed"], tmp_path)
    assert run.outcomes == {**{f"test_geometry[toy_geom_ok-{c}]": "passed" for c in VIT_CASES},
                            "test_geometry[toy_geom_cnn_transposed-input_16x24]": "failed",
                            "test_geometry[toy_geom_cnn_transposed-input_odd_17x25]": "failed"}, run.output
    assert "should give 4x6" in run.messages["test_geometry[toy_geom_cnn_transposed-input_16x24]"]
