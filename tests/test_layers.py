"""The layers family: timm.layers classes are discovered by scanning (not listed), each has
a torch reference, every layer of the importable timm passes, and planted numerics bugs
fail: in process (a patched fast path, an old RmsNorm formula, a wrong attention scale)
and through the suites on a temporary copy of timm with an edited activation. Layer ids
take the model's place in the id grammar (model_of, summary, matrix)."""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch

from harness.checks import layers
from harness.registry.test_ids import model_of
from harness.reports.matrix import build_matrix, markdown
from harness.reports.results import Results, TestResult
from tests.helpers import run_suites


@pytest.fixture(scope="module")
def discovered():
    return layers.discover()


def case(discovered, case_id: str) -> layers.LayerCase:
    return next(c for c in discovered[0] if c.id == case_id)


def test_discovery_covers_each_kind_and_reports_the_rest(discovered):
    cases, uncovered = discovered
    ids = {c.id for c in cases}
    assert len(ids) == len(cases), "layer ids are unique"
    for expected in ("LayerNorm2d-fast_norm", "LayerNorm2d-default", "RmsNorm-default", "RmsNorm2d-fast_norm",
                     "GroupNorm-default", "BatchNormAct2d-default", "GELU-default", "QuickGELU-default",
                     "Attention-fused_attn", "Attention-explicit", "AttentionPoolLatent-explicit",
                     "SelectAdaptivePool2d-catavgmax", "SelectAdaptivePool2d-fastavgmax",
                     "FastAdaptiveMaxPool-default"):
        assert expected in ids
    kinds = {c.kind for c in cases}
    assert kinds == {"norm", "act", "attention", "pool"}
    assert "timm.layers.evo_norm.EvoNorm2dS0" in uncovered  # no torch reference: reported, not tested


@pytest.mark.parametrize("case_id", ["LayerNorm2d-fast_norm", "RmsNorm-default", "GroupNorm1-default",
                                     "Attention-explicit", "Attention-fused_attn", "SelectAdaptivePool2d-fastcatavgmax",
                                     "QuickGELU-default", "BatchNormAct2d-default"])
def test_timm_layers_match_their_references(discovered, case_id):
    result = layers.check_layer(case(discovered, case_id))
    assert result.max_abs <= result.budget


def test_a_wrong_fast_path_fails_only_with_fast_norm(discovered, monkeypatch):
    import timm.layers.norm as norm

    def fast_layer_norm(x, normalized_shape, weight, bias, eps):  # planted: eps x 1000 in the fast path only
        return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps * 1000)

    monkeypatch.setattr(norm, "fast_layer_norm", fast_layer_norm)
    with pytest.raises(AssertionError, match=r"LayerNorm2d-fast_norm differs from layer_norm \(torch, float64\)"):
        layers.check_layer(case(discovered, "LayerNorm2d-fast_norm"))
    layers.check_layer(case(discovered, "LayerNorm2d-default"))


def test_the_pre_1_0_13_rms_norm_formula_fails(discovered, monkeypatch):
    """timm <= 1.0.12 normalised by the centred variance (issue #2380): planted in process."""
    import timm.layers.norm as norm

    def forward(self, x):
        v = torch.var(x, dim=-1, keepdim=True)
        return x * torch.rsqrt(v + self.eps) * self.weight

    monkeypatch.setattr(norm.RmsNorm, "forward", forward)
    with pytest.raises(AssertionError, match=r"RmsNorm-default differs from rms_norm.*% of max\|ref\|"):
        layers.check_layer(case(discovered, "RmsNorm-default"))


def test_a_wrong_attention_scale_fails_both_paths(discovered, monkeypatch):
    import timm.layers.attention as attention

    init = attention.Attention.__init__

    @functools.wraps(init)  # the generic build reads the constructor's signature
    def planted(self, *args, **kwargs):  # the explicit path reads self.scale; sdpa uses its own default
        init(self, *args, **kwargs)
        self.scale = self.scale * 2

    monkeypatch.setattr(attention.Attention, "__init__", planted)
    for variant in ("explicit", "fused_attn"):
        with pytest.raises(AssertionError, match=rf"Attention-{variant} differs from"):
            layers.check_layer(case(discovered, f"Attention-{variant}"))


def test_layer_ids_in_the_id_grammar_summary_and_matrix():
    node = "suites/test_layers.py::test_layer[LayerNorm2d-fast_norm]"
    assert model_of(node) == "LayerNorm2d"
    other = "x::test_create_variant[resnet18-scratch-default]"
    results = Results({node: TestResult(node, model_of(node), "layers", "failed", "differs"),
                       other: TestResult(other, "resnet18", "create", "passed")})
    matrix = build_matrix(results)
    assert "LayerNorm2d" in matrix.models and matrix.cell("LayerNorm2d", "layers").label == "FAIL 1/1"
    assert "| LayerNorm2d | - | FAIL 1/1 |" in markdown(matrix)


def test_an_edited_timm_fails_through_the_suites(tmp_path):
    """A temporary copy of the importable timm with QuickGELU's 1.702 changed to 1.7: the
    suites collect the layers, fail that one with the numbers and pass the others."""
    import timm

    copy = tmp_path / "timm-edited"
    shutil.copytree(Path(timm.__file__).parent, copy / "timm", ignore=shutil.ignore_patterns("__pycache__"))
    acts = copy / "timm" / "layers" / "activations.py"
    source = acts.read_text()
    assert "1.702" in source
    acts.write_text(source.replace("1.702", "1.7"))
    run = run_suites(["-m", "layers", "--models", "resnet18", "-k", "GELU or LayerNorm2d"], tmp_path, [copy])
    assert run.failed() == {"test_layer[QuickGELU-default]"}, run.output
    assert "QuickGELU-default differs from quick_gelu (torch, float64): max abs err" in run.messages[
        "test_layer[QuickGELU-default]"]
    assert run.outcomes["test_layer[GELU-default]"] == run.outcomes["test_layer[LayerNorm2d-fast_norm]"] == "passed"
    assert "0 models, " in run.output and " layers" in run.output  # the summary counts layers apart
