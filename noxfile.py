"""nox sessions: `tests` (the harness's own tests; .ci/run runs exactly this),
`compat` (the suites on a candidate timm: `latest`, a version, or a checkout path) and
`golden` (record golden outputs with --update-golden, or compare with --check)."""
from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True  # torch is large; the candidate is re-pinned every run

# torch/torchvision pins that pip takes from this machine's disk (see README).
TORCH = os.environ.get("HARNESS_TORCH", "torch==2.14.1 torchvision==0.29.1").split()
WORKERS = os.environ.get("HARNESS_WORKERS", "2")
DEFAULT_BASELINES = ("0.9.16", "1.0.12")
ROOT = Path(__file__).parent


def _install_harness(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install("-e", ".")


def _install_candidate(session: nox.Session, spec: str) -> None:
    """Install exactly the requested timm, replacing whatever a reused venv held, so a
    reused environment never tests a stale candidate."""
    if Path(spec).exists():
        session.install("--no-deps", "--force-reinstall", "-e", spec)
    else:  # timm's own dependencies came with the harness install
        session.install("--no-deps", "--force-reinstall", "--upgrade", "timm" if spec == "latest" else f"timm=={spec}")
    session.run("python", "-c", "import timm; print('candidate timm', timm.__version__, timm.__file__)")


def _split_compat_args(posargs: list[str]) -> tuple[str, list[str], list[str]]:
    candidate, baselines, rest = "latest", [], []
    args = iter(posargs)
    for arg in args:
        if arg == "--candidate":
            candidate = next(args)
        elif arg.startswith("--candidate="):
            candidate = arg.split("=", 1)[1]
        elif arg == "--baseline":
            baselines.append(next(args))
        elif arg.startswith("--baseline="):
            baselines.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return candidate, baselines or list(DEFAULT_BASELINES), rest


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own test suite (unit, planted-bug and historic-release tests)."""
    _install_harness(session)
    session.run("python", "-m", "pytest", "tests", "-n", WORKERS, "-q", "--durations=15",
                "--junitxml=reports/harness-tests.xml", *session.posargs)


@nox.session
def compat(session: nox.Session) -> None:
    """Every suite on the candidate timm, a summary table and reports under reports/."""
    candidate, baselines, pytest_args = _split_compat_args(session.posargs)
    _install_harness(session)
    _install_candidate(session, candidate)
    session.log(f"baselines {', '.join(baselines)}: cross-version artifact checks are not wired yet; "
                f"this run covers the suites on the candidate")
    if not any(a == "--models" or a.startswith("--models=") for a in pytest_args):
        pytest_args = ["--models", "smoke", *pytest_args]
    session.run("python", "-m", "pytest", "suites", "-n", WORKERS, "-q", "-rfE",
                "--report-dir=reports", "--junitxml=reports/junit.xml", *pytest_args)


@nox.session
def golden(session: nox.Session) -> None:
    """Record golden outputs (`--update-golden`) for the selection, printing what changed.
    `nox -s golden -- --check [pytest args]` compares instead; default selection: smoke."""
    _install_harness(session)
    args = list(session.posargs)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if not any(a == "--models" or a.startswith("--models=") for a in args):
        args = ["--models", "smoke", *args]
    session.run("python", "-m", "pytest", "suites", "-m", "golden", "-n", WORKERS, "-q", "-rfE",
                "--report-dir=reports", *([] if check else ["--update-golden"]), *args)
