"""Change-aware selection end to end, on copies of the newest timm (the importable one):
tracing subprocesses per tree, the static rule, the brute-force check, the command line
and ``--models affected:SPEC`` in the suites.

A behaviour-neutral edit of timm.layers.Mlp.forward (``x = x``) must mark the ViT,
MLP-Mixer and ConvNeXt models that run it and not ResNet or RegNet; a docstring-only edit
must mark none. Fingerprints are cached under .cache/fingerprints (keyed by each copy's
file digest), so only the first run traces."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import timm

from harness.checks import affected
from tests.helpers import ROOT, run_suites

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

MODELS = ["vit_tiny_patch16_224", "mixer_s16_224", "convnext_atto", "resnet18", "regnetx_002"]
RUN_MLP = {"vit_tiny_patch16_224", "mixer_s16_224", "convnext_atto"}
TIMM_ROOT = Path(timm.__file__).resolve().parent.parent
MLP_FORWARD = "    def forward(self, x):\n        x = self.fc1(x)\n"


def copy_of_timm(dest: Path, edit: tuple[str, str] | None = None) -> Path:
    """dest/timm: a copy of the importable timm, with ``edit`` (old, new) applied once to
    timm/layers/mlp.py."""
    shutil.copytree(TIMM_ROOT / "timm", dest / "timm", ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        path = dest / "timm" / "layers" / "mlp.py"
        text = path.read_text()
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1], 1))
    return dest


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("timm-trees")
    return {
        "pristine": copy_of_timm(base / "pristine"),
        "neutral": copy_of_timm(base / "neutral", (MLP_FORWARD, MLP_FORWARD.replace("    x = self", "    x = x\n"
                                                                                                 "        x = self"))),
        "docstring": copy_of_timm(base / "docstring", (MLP_FORWARD, MLP_FORWARD.replace(
            "(self, x):\n", '(self, x):\n        """Apply the MLP."""  # documented\n'))),
    }


def test_neutral_edit_of_mlp_forward_marks_the_models_that_run_it(trees):
    result = affected.compute(str(trees["pristine"]), str(trees["neutral"]), ",".join(MODELS), verify=True)
    assert set(result.affected) == RUN_MLP
    for name in RUN_MLP:
        [reason] = result.affected[name]
        assert reason.kind == "code" and reason.functions == ("timm.layers.mlp:Mlp.forward",), reason
    # brute force (both copies traced, executed functions compared) agrees model by model
    assert result.disagreements == {"missed": [], "extra": []}


def test_docstring_only_edit_marks_none(trees):
    result = affected.compute(str(trees["pristine"]), str(trees["docstring"]), ",".join(MODELS))
    assert result.affected == {}
    assert result.selected == MODELS


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", "affected", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)


def test_command_prints_names_on_stdout_and_reasons_on_stderr(trees):
    proc = _cli("--baseline", str(trees["pristine"]), "--candidate", str(trees["neutral"]),
                "--models", ",".join(MODELS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [m for m in MODELS if m in RUN_MLP]
    assert "affected: 3 of 5 models" in proc.stderr
    assert "vit_tiny_patch16_224: code: ran on" in proc.stderr and "timm.layers.mlp:Mlp.forward changed" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--baseline", "/nonexistent/timm-tree"], "is neither a timm release version"),
    (["--baseline", str(ROOT / "tests")], "holds no timm/ package"),
    (["--baseline", "installed", "--models", "nosuchmodel*"], "matches no registered model"),
])
def test_bad_input_is_a_clear_error(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_suites_select_the_affected_models_and_say_why(trees, tmp_path):
    """--models affected:SPEC with the edited copy as the baseline (the importable timm is the
    candidate): the three models that run Mlp.forward are collected, and the summary says why."""
    others = sorted(set(timm.list_models()) - set(MODELS))
    run = run_suites(["--models", f"affected:{trees['neutral']}", "--exclude", ",".join(others),
                      "-m", "create", "-k", "scratch-default", "-p", "no:xdist"], tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert sorted(run.outcomes) == sorted(f"test_create_variant[{m}-scratch-default]" for m in RUN_MLP)
    assert "3 models affected between" in run.output and "timm.layers.mlp:Mlp.forward (3)" in run.output
