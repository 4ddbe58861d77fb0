"""``python -m harness capabilities``: capability -> number of models, from discovery on
the meta device, printed with rich and written as Markdown; capabilities cached in the
suites' cache layout; a --models pattern that matches nothing is a usage error."""
from __future__ import annotations

from harness.reports import capabilities_report as report
from tests.toys import toy_depth_models  # noqa: F401 - registers the toys

MODELS = "toy_depth_ok,toy_depth_pool_crash"


def test_report_counts_models_per_capability(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "CACHE_DIR", tmp_path / "cache")
    out = tmp_path / "capabilities.md"
    assert report.main(["--models", MODELS, "--report", str(out), "--json", str(tmp_path / "caps.json")]) == 0
    printed = capsys.readouterr().out
    assert "Capabilities of 2 models" in printed
    md = out.read_text()
    assert "| pool | `accepts global_pool='max'` | 2 | 100% |" in md
    assert "| pool | `attention pool with global_pool='map'` | 2 | 100% |" in md
    assert "| constructor kwarg | `init_values` | 2 | 100% |" in md
    assert "| input | `in_chans=1 (pretrained first conv adapted)` | 2 | 100% |" in md
    broken = "| broken | `global_pool_avgmax: accepted, then construction crashed` | 1 | 50% | `toy_depth_pool_crash` |"
    assert broken in md
    assert any((tmp_path / "cache").rglob("toy_depth_ok"))  # cached under the suites' keys
    assert report.main(["--models", MODELS, "--report", str(out)]) == 0  # from the cache


def test_unknown_pattern_is_a_usage_error(capsys):
    assert report.main(["--models", "no_such_model_*"]) == 2
    assert "matches no registered model" in capsys.readouterr().err


def test_a_kwarg_with_several_values_counts_its_model_once():
    """pos_embed='none' and pos_embed='' are two cases of one constructor kwarg: the report
    counts the model once under pos_embed (it listed it twice, and counted it twice)."""
    from harness.models.capabilities import Capabilities
    from harness.reports.capabilities_report import tally
    caps = Capabilities(ctor_kwargs={"pos_embed_none": {"pos_embed": "none"}, "pos_embed_": {"pos_embed": ""},
                                     "drop_rate_0.25": {"drop_rate": 0.25}})
    rows = {name: models for section, name, models in tally({"vit": caps}) if section == "constructor kwarg"}
    assert rows == {"pos_embed": ["vit"], "drop_rate": ["vit"]}
