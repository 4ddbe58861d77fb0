"""bench-sweep: per-family seconds per model from a harness run's results, timm's own test
ids for the same models, and the ratio between the two wall times."""
from __future__ import annotations

from harness.reports import bench_sweep

FAKE_TIMM_TESTS = '''
import pytest

@pytest.mark.base
@pytest.mark.parametrize("model_name", ["toy_a", "toy_b", "toy_c"])
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward(model_name, batch_size):
    pass

@pytest.mark.cfg
@pytest.mark.parametrize("model_name", ["toy_a", "toy_ab"])
def test_model_default_cfgs(model_name):
    pass

@pytest.mark.parametrize("model_name", ["toy_a"])
def test_not_base_or_cfg(model_name):
    pass
'''


def test_timm_ids_are_the_base_and_cfg_tests_of_exactly_the_sample(tmp_path):
    (tmp_path / "test_models.py").write_text(FAKE_TIMM_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    base\n    cfg\n")
    ids = bench_sweep.timm_node_ids(tmp_path, ["toy_a", "toy_c"])
    assert sorted(ids) == ["test_models.py::test_model_default_cfgs[toy_a]",
                           "test_models.py::test_model_forward[1-toy_a]",
                           "test_models.py::test_model_forward[1-toy_c]"]


SDIST_TESTS = FAKE_TIMM_TESTS.replace("@pytest.mark.base\n@pytest.mark.parametrize(\"model_name\", [\"toy_a\", \"toy_b\"",
                                      "@pytest.mark.forward\n@pytest.mark.parametrize(\"model_name\", [\"toy_a\", \"toy_b\"")
SDIST_TESTS = SDIST_TESTS.replace('["toy_a", "toy_ab"]', '["toy_a.tag_in1k", "toy_ab.tag"]')


def test_timm_ids_in_a_source_distribution_layout(tmp_path, monkeypatch):
    """As timm 1.0.31's sdist: the config in pyproject.toml one level up (so pytest's rootdir
    is the sdist, not tests/), forward tests with a marker of their own, cfg tests by tag."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_models.py").write_text(SDIST_TESTS)
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nmarkers = [\n    "base: b",\n'
                                             '    "forward: f",\n    "cfg: c",\n]\n')
    assert bench_sweep.timm_markexpr(tests) == "base or cfg or forward"
    ids = bench_sweep.timm_node_ids(tests, ["toy_a", "toy_c"])
    assert sorted(ids) == ["test_models.py::test_model_default_cfgs[toy_a.tag_in1k]",
                           "test_models.py::test_model_forward[1-toy_a]",
                           "test_models.py::test_model_forward[1-toy_c]"]
    monkeypatch.setattr(bench_sweep, "timm_tests_dir", lambda version: tests)
    side = bench_sweep.run_timm(["toy_a", "toy_c"], 0, tmp_path, "unused")  # the ids run where collected
    assert side["tests"] == 3 and side["markexpr"] == "base or cfg or forward"
    assert set(side["per_model"]) == {"toy_a", "toy_c"}


def test_harness_side_and_summary(tmp_path):
    models = ["toy_ok", "toy_nan_output"]
    args = ["-p", "tests.toys.toy_models", "-m", "create or reset_classifier", "-p", "no:cacheprovider"]
    harness = bench_sweep.run_harness(models, 0, tmp_path, args)
    assert set(harness["families"]) == {"create", "reset_classifier"}
    assert set(harness["families"]["create"]) == set(models)
    text, figures = bench_sweep.summary(models, harness, {"wall_s": harness["wall_s"] / 2, "tests": 4,
                                                          "per_model": {}}, ("0.1", "0.2"))
    assert figures["ratio"] == 2.0
    assert "ratio harness / timm" in text and "load average before 0.1" in text


def test_a_slow_run_shows_both_scopes_and_the_default_share():
    """--slow: the slow scope's seconds beside the default's; the default's wall is the run's
    wall times the default's share of the test time (labelled as such)."""
    harness = {"wall_s": 40.0, "slow": True,
               "families": {"onnx": {"a": 2.0, "b": 4.0}, "create": {"a": 1.0, "b": 1.0}},
               "slow_families": {"onnx": {"a": 6.0, "b": 10.0}, "benchmark": {"a": 0.0, "b": 0.0}}}
    text, figures = bench_sweep.summary(["a", "b"], harness, {"wall_s": 10.0, "tests": 2, "per_model": {}}, ("0", "0"))
    assert figures["families"]["onnx"]["mean"] == 3.0 and figures["slow_families"]["onnx"]["mean"] == 8.0
    assert figures["test_s_per_model"] == 4.0 and figures["slow_test_s_per_model"] == 8.0
    assert figures["default_wall_per_model_estimate"] == 20.0 * 8 / 24
    assert figures["default_ratio_estimate"] == figures["default_wall_per_model_estimate"] / 5.0
    assert "slow scope mean s/model" in text and "default scope: wall / model" in text
    assert list(figures["families"]) == ["onnx", "create", "benchmark"]  # costliest first, both scopes counted
