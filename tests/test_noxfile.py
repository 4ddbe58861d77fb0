"""The nox sessions' own logic, with a stand-in session (nox itself is not run here):
`nox -s compat` fails when a baseline's export failed or its folder is missing (their compat
tests would otherwise just not be collected), after running the suites; `nox -s golden`
compares by default and records only with `--record`."""
from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import ROOT


def _noxfile():
    spec = importlib.util.spec_from_file_location("harness_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeSession:
    """Records every command; ``outputs`` maps a command word to what run() returns."""

    def __init__(self, posargs, outputs, artifacts):
        self.posargs, self.outputs, self.artifacts, self.calls = list(posargs), outputs, artifacts, []

    def install(self, *args, **kwargs):
        pass

    def log(self, *args, **kwargs):
        pass

    def error(self, message):
        raise SessionError(message)

    def run(self, *args, **kwargs):
        self.calls.append(args)
        if "export" in args:
            version = kwargs["env"]["PYTHONPATH"].rsplit("/", 1)[-1]
            return self.outputs["export"](version, args[args.index("export") + 1])
        if "releases" in args:
            return f"/releases/{args[-1]}\n"
        if "-c" in args:
            return "1.0.31\n"
        return True


class SessionError(Exception):
    pass


@pytest.fixture
def nox_module(tmp_path, monkeypatch):
    module = _noxfile()
    monkeypatch.setattr(module, "ARTIFACTS", tmp_path / "artifacts")
    return module


def _export_writing(models_by_version: dict[str, list[str]], failed: dict[str, str] | None = None):
    def export(version, compat_dir):
        from pathlib import Path
        for model in models_by_version.get(version, []):
            (Path(compat_dir) / version / model).mkdir(parents=True, exist_ok=True)
        lines = [f"{version} {m}: exported" for m in models_by_version.get(version, [])]
        lines += [f"{version} {m}: FAILED: {why}" for m, why in (failed or {}).items()]
        return "\n".join(lines) + "\n"
    return export


def test_compat_session_fails_on_a_failed_export_and_a_missing_baseline_after_the_suites(nox_module, tmp_path):
    export = _export_writing({"0.9.16": ["resnet18"]}, failed={"dpn48b": "RuntimeError: boom"})
    session = FakeSession(["--candidate", "1.0.31", "--baseline", "0.9.16", "--baseline", "1.0.12"],
                          {"export": export}, tmp_path)
    with pytest.raises(SessionError) as exc:
        nox_module.compat(session)
    message = str(exc.value)
    assert "baseline 0.9.16: export failed: 0.9.16 dpn48b: FAILED: RuntimeError: boom" in message
    assert "baseline 1.0.12: no artifacts in" in message
    assert any("pytest" in call for call in session.calls), "the suites run before the session fails"


def test_compat_session_passes_when_every_baseline_exported(nox_module, tmp_path):
    export = _export_writing({"0.9.16": ["resnet18"], "1.0.12": ["resnet18"]})
    session = FakeSession(["--candidate", "1.0.31", "--baseline", "0.9.16", "--baseline", "1.0.12"],
                          {"export": export}, tmp_path)
    nox_module.compat(session)
    pytest_call = next(call for call in session.calls if "pytest" in call)
    assert "--compat-dir" in pytest_call


def test_golden_session_compares_by_default_and_records_only_when_asked(nox_module, tmp_path):
    session = FakeSession([], {}, tmp_path)
    nox_module.golden(session)
    assert "--update-golden" not in session.calls[-1]
    session = FakeSession(["--record", "--accept-golden-changes", "--models", "resnet18"], {}, tmp_path)
    nox_module.golden(session)
    call = session.calls[-1]
    assert "--update-golden" in call and "--accept-golden-changes" in call and "--record" not in call
    assert call[call.index("--models") + 1] == "resnet18"
