"""The patch_size check passes on correct loading and fails on planted bugs: a filter
that returns before resampling for OpenCLIP checkpoints only (timm 0.9.16's bug) and a
filter that resizes the patch kernel like an image. Plus the PI-resize assertion itself."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed

from harness.checks.patch_size import assert_pi_resize, check_patch_case, make_patch_source, patch_cases
from tests.helpers import run_suites
from tests.toys import toy_patch_models  # noqa: F401 - registers the toys


def run_cases(model: str, tmp_path) -> dict[str, str]:
    """Outcome per case id: 'passed' or the assertion message."""
    outcomes, sources = {}, {}
    for case in patch_cases(model):
        key = (case.tag, case.family)
        if key not in sources:
            sources[key] = make_patch_source(case.tag, case.family, tmp_path)
        try:
            check_patch_case(case, "cpu", sources[key])
            outcomes[repr(case)] = "passed"
        except AssertionError as exc:
            outcomes[repr(case)] = str(exc)
    return outcomes


def test_cases_cover_each_tag_family_and_geometry():
    ids = [repr(c) for c in patch_cases("toy_vit_ok")]
    assert ids == [f"toy_vit_ok.{tag}-{fam}-{g}" for tag, fam in (("laion", "open_clip"), ("timm", "timm"))
                   for g in ("original", "patch_size_16", "img_size_24")]
    assert patch_cases("resnet18") == []  # no patch embedding: not collected


def test_correct_toy_passes_every_case(tmp_path):
    outcomes = run_cases("toy_vit_ok", tmp_path)
    assert set(outcomes.values()) == {"passed"}, outcomes


def test_openclip_early_return_fails_for_the_openclip_family_only(tmp_path):
    outcomes = run_cases("toy_vit_openclip_early_return", tmp_path)
    failed = {k for k, v in outcomes.items() if v != "passed"}
    assert failed == {"toy_vit_openclip_early_return.laion-open_clip-patch_size_16",
                      "toy_vit_openclip_early_return.laion-open_clip-img_size_24"}, outcomes
    message = outcomes["toy_vit_openclip_early_return.laion-open_clip-patch_size_16"]
    assert "pretrained=True) from a open_clip checkpoint raised RuntimeError" in message
    assert "size mismatch for patch_embed.proj.weight" in message


def test_naive_kernel_resize_fails_the_pi_check(tmp_path):
    outcomes = run_cases("toy_vit_naive_resize", tmp_path)
    failed = {k for k, v in outcomes.items() if v != "passed"}
    # the naive resize sees timm keys only (the OpenCLIP file's kernel is visual.conv1.weight)
    assert failed == {"toy_vit_naive_resize.timm-timm-patch_size_16"}, outcomes
    assert "is not the PI-resize of the checkpoint's" in outcomes["toy_vit_naive_resize.timm-timm-patch_size_16"]


def test_pi_resize_check_accepts_timm_and_rejects_plain_interpolation():
    w = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert_pi_resize(w, resample_patch_embed(w, (16, 16)), "bicubic+aa")
    assert_pi_resize(w, resample_patch_embed(w, (16, 16), interpolation="bilinear", antialias=False), "bilinear")
    with pytest.raises(AssertionError, match="is not the PI-resize"):
        assert_pi_resize(w, F.interpolate(w, size=(16, 16), mode="bicubic"), "naive")
    with pytest.raises(AssertionError, match="is not the PI-resize"):
        assert_pi_resize(w, resample_patch_embed(w, (16, 16)) * 1.01, "scaled")


def test_suite_catches_the_planted_bug_end_to_end(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_patch_models", "-m", "patch_size", "--models",
                      "toy_vit_ok,toy_vit_openclip_early_return"], tmp_path)
    assert run.returncode == 1, run.output
    assert run.failed() == {
        "test_patch_size[toy_vit_openclip_early_return.laion-open_clip-patch_size_16]",
        "test_patch_size[toy_vit_openclip_early_return.laion-open_clip-img_size_24]"}, run.output
    assert len(run.outcomes) == 12 and all(t.startswith("test_patch_size[toy_vit_") for t in run.outcomes)


def test_structural_cases_on_meta_check_the_implied_shapes():
    for case in patch_cases("toy_vit_ok"):
        check_patch_case(case, "meta", None)
    bad = patch_cases("toy_vit_ok")[1]
    wrong = type(bad)(bad.tag, bad.family, bad.geometry_id, bad.kwargs,
                      type(bad.geometry)(bad.geometry.patch, bad.geometry.img, bad.geometry.prefix_tokens + 1))
    with pytest.raises(AssertionError, match="pos_embed"):
        check_patch_case(wrong, "meta", None)
