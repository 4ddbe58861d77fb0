"""Running the suites in a subprocess, as a user would, and reading the outcome of each
test from JUnit XML (robust against changes in pytest's terminal output)."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SuiteRun:
    returncode: int
    output: str
    outcomes: dict[str, str]   # test id (function[params]) -> passed/failed/xfailed/skipped/error
    messages: dict[str, str]

    def failed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o in ("failed", "error")}


def run_suites(args: list[str], tmp_path: Path, pythonpath: list[Path] = (), timeout: int = 900) -> SuiteRun:
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_WORKER_COUNT", None)
    cmd = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", "--no-header",
           f"--junitxml={junit}", "-o", "junit_family=xunit2", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    outcomes, messages = _read_junit(junit) if junit.exists() else ({}, {})
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, outcomes, messages)


def _read_junit(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    outcomes, messages = {}, {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = case.get("name")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = ("failed" if child.tag == "failure" else "error"), child.text or ""
            elif child.tag == "skipped":
                xfail = (child.get("type") or "") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), child.get("message") or ""
        outcomes[tid], messages[tid] = outcome, message
    return outcomes, messages


INSTALLED = "installed"  # the timm importable in the test environment (the newest release in CI)


def release_runs(tmp_path_factory, label: str):
    """``run(version, args)``: run_suites(args) under timm ``version`` (a release installed by
    harness.weights.releases, or INSTALLED), cached per (version, args) for a test module."""
    from harness.weights.releases import timm_release

    cache: dict[tuple, SuiteRun] = {}

    def run(version: str, args: list[str]) -> SuiteRun:
        key = (version, tuple(args))
        if key not in cache:
            path = [] if version == INSTALLED else [timm_release(version)]
            cache[key] = run_suites(args, tmp_path_factory.mktemp(f"{label}-{version}"), path)
        return cache[key]
    return run


def patched_timm(tmp_path: Path, relpath: str, old: str, new: str) -> Path:
    """A copy of the importable timm with one edit (``old`` -> ``new`` in ``timm/<relpath>``),
    for planting a bug in timm's own code: put the returned directory first on PYTHONPATH
    (run_suites' pythonpath). Fails if ``old`` is not in the file, so a planted bug never
    silently stops being planted when timm changes."""
    import shutil

    import timm

    root = tmp_path / "patched-timm"
    target = root / "timm"
    if not target.exists():
        shutil.copytree(Path(timm.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    path = target / relpath
    text = path.read_text()
    assert old in text, f"timm/{relpath} no longer contains the text the planted bug replaces: {old!r}"
    path.write_text(text.replace(old, new))
    return root
