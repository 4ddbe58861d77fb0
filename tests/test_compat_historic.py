"""The historic pickle regression on the real releases: timm 1.0.7 added ConvNormAct.aa and
read it unguarded in forward, so a cspnet/dpn/regnet module pickled by 0.9.16 failed to run
on 1.0.7-1.0.11 with AttributeError 'ConvNormAct' object has no attribute 'aa' (fixed in
1.0.12 with getattr). Artifacts are exported on 0.9.16 by the real CLI; state dicts load on
both candidates, and 1.0.12 computes the outputs 0.9.16 recorded for the same weights."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.weights.releases import timm_release
from tests.helpers import ROOT, run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

MODELS = ("cspresnet50", "dpn48b", "regnetx_002")


@pytest.fixture(scope="module")
def compat_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compat-artifacts")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(timm_release("0.9.16")), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-m", "harness", "export", str(out), "--models", ",".join(MODELS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (out / "0.9.16").iterdir() if p.is_dir()) == sorted(MODELS)  # + registry.json
    return out


def _run(compat_dir, version, tmp_path_factory):
    return run_suites(["-m", "compat", "--compat-dir", str(compat_dir), "--models", ",".join(MODELS)],
                      tmp_path_factory.mktemp(f"compat-{version}"), [timm_release(version)])


def test_0_9_16_pickles_fail_on_1_0_9_naming_aa_state_dicts_load(compat_dir, tmp_path_factory):
    run = _run(compat_dir, "1.0.9", tmp_path_factory)
    assert run.returncode == 1, run.output
    for model in MODELS:
        assert run.outcomes[f"test_compat_state_dict[{model}-0.9.16]"] == "passed", run.output
        pickle = f"test_compat_pickle[{model}-0.9.16]"
        assert run.outcomes[pickle] == "failed", run.output
        assert "'ConvNormAct' object has no attribute 'aa'" in run.messages[pickle]
        assert "module pickled by timm 0.9.16 on timm 1.0.9 raised AttributeError" in run.messages[pickle]


def test_0_9_16_artifacts_pass_on_1_0_12(compat_dir, tmp_path_factory):
    run = _run(compat_dir, "1.0.12", tmp_path_factory)
    assert run.returncode == 0, run.output
    kinds = ("state_dict", "pickle", "outputs")  # outputs: the differential check on the export's reference
    assert set(run.outcomes) == {f"test_compat_{kind}[{m}-0.9.16]" for m in MODELS for kind in kinds}, run.output
    assert set(run.outcomes.values()) == {"passed"}, run.output
