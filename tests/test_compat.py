"""Export and the compat suite on a toy model: exports verify and are idempotent; a planted
state_dict key rename (the artifact of an older "release" whose key differed) is named as
a rename; a tampered file is a clear error that nothing unpickles; a bad --compat-dir or
-m compat without it is a usage error; without --compat-dir nothing compat is collected."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from harness.checks.compat import CompatLayoutError, discover
from harness.cli import main as harness_main
from harness.models import build
from harness.weights import artifacts
from tests.helpers import run_suites
from tests.toys import toy_models  # noqa: F401 - registers the toys

PLUGIN = ["-p", "tests.toys.toy_models", "--models", "toy_ok"]


def _export_as(root: Path, version: str) -> Path:
    """toy_ok exported by this timm, relabelled as written by ``version`` (another release)."""
    artifacts.export_model("toy_ok", root)
    src = root / build.timm_version() / "toy_ok"
    dst = root / version / "toy_ok"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    manifest = json.loads((dst / artifacts.MANIFEST).read_text())
    manifest["timm"] = version
    (dst / artifacts.MANIFEST).write_text(json.dumps(manifest))
    return dst


def _rehash(model_dir: Path) -> None:
    path = model_dir / artifacts.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"] = {name: artifacts.sha256(model_dir / name) for name in manifest["files"]}
    path.write_text(json.dumps(manifest))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_export_is_idempotent_verified_and_rebuilds_a_corrupt_copy(tmp_path):
    assert artifacts.export_model("toy_ok", tmp_path) == "exported"
    model_dir = tmp_path / build.timm_version() / "toy_ok"
    manifest = artifacts.verify(model_dir)
    assert manifest.timm == build.timm_version() and manifest.has_pickle
    assert set(manifest.data["files"]) == {"state_dict.safetensors", "model.pth", "input.safetensors",
                                           "outputs.safetensors", "train_checkpoint.pth.tar",
                                           "train_expected.safetensors"}
    assert manifest.train_checkpoint == {"file": "train_checkpoint.pth.tar", "expected": "train_expected.safetensors",
                                         "epoch": 3, "error": ""}
    assert {"torch", "python", "create_kwargs"} <= set(manifest.data)
    assert artifacts.export_model("toy_ok", tmp_path) == "up to date"
    _flip_byte(model_dir / "model.pth")
    with pytest.raises(artifacts.ArtifactError, match=r"model.pth: sha256 .* does not match the manifest"):
        artifacts.verify(model_dir)
    assert artifacts.export_model("toy_ok", tmp_path) == "exported"  # replaced atomically
    artifacts.verify(model_dir)
    assert not list(model_dir.parent.glob(".staging-*"))


def test_export_cli_rejects_an_unknown_pattern(tmp_path, capsys):
    assert harness_main(["export", str(tmp_path), "--models", "toy_ok,no_such_model*"]) == 2
    assert "'no_such_model*' matches no registered model" in capsys.readouterr().err
    assert not (tmp_path / build.timm_version()).exists()


def test_compat_names_a_renamed_key_and_refuses_a_tampered_file(tmp_path):
    compat = tmp_path / "compat"
    renamed = _export_as(compat, "0.0.1")  # an older "release" whose key was stage_v0.weight
    sd_path = renamed / artifacts.STATE_DICT
    sd = load_file(str(sd_path))
    sd["stage_v0.weight"] = sd.pop("stage.weight")
    save_file(sd, str(sd_path))
    _rehash(renamed)
    tampered = _export_as(compat, "0.0.2")
    _flip_byte(tampered / artifacts.PICKLE)  # not re-hashed: must never be unpickled
    _export_as(compat, build.timm_version())  # the candidate's own artifacts: not compared

    run = run_suites(PLUGIN + ["-m", "compat", "--compat-dir", str(compat)], tmp_path)
    assert run.outcomes == {
        "test_compat_state_dict[toy_ok-0.0.1]": "failed",
        "test_compat_pickle[toy_ok-0.0.1]": "passed",
        "test_compat_state_dict[toy_ok-0.0.2]": "failed",
        "test_compat_pickle[toy_ok-0.0.2]": "failed",
    }, run.output
    msg = run.messages["test_compat_state_dict[toy_ok-0.0.1]"]
    assert "renamed keys (old -> new) (1):" in msg and "stage_v0.weight -> stage.weight" in msg
    assert "missing keys" not in msg and "unexpected keys" not in msg
    for test in ("test_compat_pickle[toy_ok-0.0.2]", "test_compat_state_dict[toy_ok-0.0.2]"):
        assert "model.pth: sha256" in run.messages[test] and "does not match the manifest" in run.messages[test]


def test_compat_fails_on_outputs_that_differ_from_the_stored_ones(tmp_path):
    """An older "release" whose forward gave 1% other outputs for the same weights: both the
    state_dict and the pickle round trip load, and both fail on the outputs."""
    compat = tmp_path / "compat"
    changed = _export_as(compat, "0.0.3")
    outputs = load_file(str(changed / artifacts.OUTPUTS))
    save_file({k: v * 1.01 for k, v in outputs.items()}, str(changed / artifacts.OUTPUTS))
    _rehash(changed)
    (compat / build.timm_version()).rmdir()  # _export_as leaves the candidate's folder empty
    run = run_suites(PLUGIN + ["-m", "compat", "--compat-dir", str(compat)], tmp_path)
    assert run.outcomes == {"test_compat_state_dict[toy_ok-0.0.3]": "failed",
                            "test_compat_pickle[toy_ok-0.0.3]": "failed"}, run.output
    assert ("outputs with the state_dict of timm 0.0.3 vs the outputs it stored differs: max abs err"
            in run.messages["test_compat_state_dict[toy_ok-0.0.3]"])
    assert ("outputs of the toy_ok module pickled by timm 0.0.3 vs the outputs it stored differs: max abs err"
            in run.messages["test_compat_pickle[toy_ok-0.0.3]"])


def test_save_load_fails_on_a_round_trip_that_loses_a_tensor(tmp_path):
    """toy_lossy_state_dict's forward reads a random non-persistent buffer: the state_dict
    round trip loses it (a fresh model draws another), the whole-module pickle keeps it."""
    from harness.checks import save_load

    lossy = save_load.save("toy_lossy_state_dict", tmp_path)
    with pytest.raises(AssertionError, match=rf"outputs with the state_dict of timm {build.timm_version()} vs the "
                                             r"outputs it stored differs: max abs err"):
        save_load.check_state_dict_round_trip(lossy, "cpu")
    save_load.check_pickle_round_trip(lossy, "cpu")
    ok = save_load.save("toy_ok", tmp_path)
    save_load.check_state_dict_round_trip(ok, "cpu")
    save_load.check_pickle_round_trip(ok, "cpu")


def test_compat_dir_usage_errors_and_no_collection_without_it(tmp_path):
    run = run_suites(PLUGIN + ["-m", "compat"], tmp_path)
    assert run.returncode == 4 and "-m compat needs --compat-dir" in run.output, run.output
    (tmp_path / "bad" / "latest" / "toy_ok").mkdir(parents=True)
    run = run_suites(PLUGIN + ["--compat-dir", str(tmp_path / "bad")], tmp_path)
    assert run.returncode == 4 and "'latest' is not a timm version" in run.output, run.output
    run = run_suites(PLUGIN + ["--collect-only", "-m", "compat or create"], tmp_path)
    assert run.returncode == 0 and "test_compat" not in run.output and "test_create_variant" in run.output


def test_discover_rejects_unusable_layouts(tmp_path):
    with pytest.raises(CompatLayoutError, match="no such directory"):
        discover(tmp_path / "missing", "1.0.31")
    (tmp_path / "1.0.31" / "toy_ok").mkdir(parents=True)
    with pytest.raises(CompatLayoutError, match="holds only timm 1.0.31; compat needs artifacts written by another"):
        discover(tmp_path, "1.0.31")
    (tmp_path / "0.9.16").mkdir()
    with pytest.raises(CompatLayoutError, match="0.9.16/ holds no model directory"):
        discover(tmp_path, "1.0.31")
    (tmp_path / "0.9.16" / "toy_ok").mkdir()
    assert [repr(s) for s in discover(tmp_path, "1.0.31")] == ["toy_ok-0.9.16"]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CompatLayoutError, match="'notes.txt' is not a timm version"):
        discover(tmp_path, "1.0.31")
