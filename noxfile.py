"""nox sessions: `tests` (the harness's own tests; .ci/run runs exactly this),
`compat` (the suites on a candidate timm: `latest`, a version, or a checkout path) and
`golden` (compare golden outputs; `-- --record` records, `--accept-golden-changes` overwrites changes)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness's pure-stdlib sweep defaults
from harness.plugin.sweep_defaults import with_sweep_defaults  # noqa: E402

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True  # torch is large; the candidate is re-pinned every run

# torch/torchvision pins that pip takes from this machine's disk (see README).
TORCH = os.environ.get("HARNESS_TORCH", "torch==2.14.1 torchvision==0.29.1").split()
WORKERS = os.environ.get("HARNESS_WORKERS", "2")
# "previous": the newest release older than the candidate (resolved from the package index),
# so a break against the release users have today shows up.
DEFAULT_BASELINES = ("0.9.16", "1.0.12", "previous")
ROOT = Path(__file__).parent
ARTIFACTS = ROOT / "artifacts"  # <selection hash>/<baseline version>/<model>/ (harness.weights.artifacts)


def _install_harness(session: nox.Session, extras: str = "") -> None:
    session.install(*TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


def _install_candidate(session: nox.Session, spec: str) -> None:
    """Install exactly the requested timm, replacing whatever a reused venv held, so a
    reused environment never tests a stale candidate."""
    if Path(spec).exists():
        session.install("--no-deps", "--force-reinstall", "-e", spec)
    else:  # timm's own dependencies came with the harness install
        session.install("--no-deps", "--force-reinstall", "--upgrade", "timm" if spec == "latest" else f"timm=={spec}")
    session.run("python", "-c", "import timm; print('candidate timm', timm.__version__, timm.__file__)")


def _split_args(posargs: list[str], *options: str) -> tuple[dict[str, list[str]], list[str]]:
    """Pull the session's own options (``--name V`` or ``--name=V``, repeatable) out of
    posargs; the rest goes to pytest."""
    found: dict[str, list[str]] = {o: [] for o in options}
    rest, args = [], iter(posargs)
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in found:
            found[name].append(arg.split("=", 1)[1] if "=" in arg else next(args))
        else:
            rest.append(arg)
    return found, rest


def _split_compat_args(posargs: list[str]) -> tuple[str, list[str], list[str]]:
    found, rest = _split_args(posargs, "--candidate", "--baseline")
    candidate = found["--candidate"][-1] if found["--candidate"] else "latest"
    return candidate, found["--baseline"] or list(DEFAULT_BASELINES), rest


def _option(args: list[str], name: str, default: str) -> str:
    """The last value of a pytest option in args (``--name V`` or ``--name=V``)."""
    value, it = default, iter(args)
    for arg in it:
        if arg == name:
            value = next(it, value)
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _previous(session: nox.Session, version: str) -> str:
    """The newest final release on the index older than ``version`` (harness.weights.releases)."""
    return session.run("python", "-m", "harness", "releases", "--previous", version,
                       silent=True).strip().splitlines()[-1]


def _resolve_baselines(session: nox.Session, baselines: list[str], candidate_version: str) -> list[str]:
    """Replace "previous" by the newest final release on the index older than the candidate."""
    if "previous" not in baselines:
        return baselines
    previous = _previous(session, candidate_version)
    session.log(f"baseline 'previous' is timm {previous}")
    return list(dict.fromkeys(previous if b == "previous" else b for b in baselines))


def _resolve_affected(session: nox.Session, models: str, exclude: str, candidate_version: str) -> tuple[str, str]:
    """--models tokens 'affected:SPEC' ('previous' resolved as for the baselines): run
    `python -m harness affected` once (it prints the summary and the reason per model and
    caches the result for the suites), and return (the --models value for pytest, with
    'previous' replaced by the version; the same selection as explicit names, for the
    export under the baseline release, which cannot resolve affected:)."""
    pytest_tokens, export_tokens = [], []
    for token in [t.strip() for t in models.split(",") if t.strip()]:
        if not token.startswith("affected:"):
            pytest_tokens.append(token)
            export_tokens.append(token)
            continue
        spec = token.split(":", 1)[1]
        if spec == "previous":
            spec = _previous(session, candidate_version)
        result = ROOT / "reports" / "affected.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        session.run("python", "-m", "harness", "affected", "--baseline", spec, "--candidate", "installed",
                    "--exclude", exclude, "--jobs", WORKERS, "--json", str(result))
        names = list(json.loads(result.read_text())["affected"])
        session.log(f"--models affected:{spec}: {len(names)} models (reasons above and in {result})")
        pytest_tokens.append(f"affected:{spec}")
        export_tokens += names
    return ",".join(pytest_tokens), ",".join(dict.fromkeys(export_tokens))


# What an export writes per model. Part of the artifact cache key: the export skips a model whose
# manifest verifies, so a cache written before the export wrote more (training checkpoints,
# registry dumps, reference outputs) would silently keep the families that read them from running.
EXPORT_CONTENTS = 2  # 1: pickle/state_dict/outputs; 2: + training checkpoint, registry.json, reference outputs


def _export_baselines(session: nox.Session, baselines: list[str], candidate_version: str,
                      pytest_args: list[str], export_models: str) -> tuple[Path, list[str]]:
    """Artifacts of each baseline release for this model selection, exported once and
    cached under artifacts/<selection hash>/<version>/ (the export skips models whose
    manifest verifies). Each baseline's timm is installed with --no-deps beside the
    session's torch (harness.weights.releases) and put first on PYTHONPATH for the export.
    Returns the folder and the problems that must fail the session: an export that failed
    (exit 1: the models are listed) and a baseline whose folder is missing or empty.
    The cache key is the --models value as given (``affected:1.0.30`` stays one key while the
    affected set grows); the export gets the explicit names (export_models)."""
    selection = {opt: _option(pytest_args, opt, default) for opt, default in
                 (("--models", "smoke"), ("--exclude", ""), ("--max-params", "100000000"))}
    key = hashlib.sha256(json.dumps({**selection, "contents": EXPORT_CONTENTS},
                                    sort_keys=True).encode()).hexdigest()[:12]
    compat_dir = ARTIFACTS / key
    compat_dir.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{key}.json").write_text(json.dumps(selection, indent=1) + "\n")  # what the hash stands for
    problems = []
    for version in baselines:
        if version == candidate_version:
            session.log(f"baseline {version} is the candidate itself: nothing to compare, not exported")
            continue
        release = session.run("python", "-m", "harness", "releases", version,
                              silent=True).strip().splitlines()[-1]
        out = session.run("python", "-m", "harness", "export", str(compat_dir), "--missing-ok",
                          "--models", export_models, "--exclude", selection["--exclude"],
                          "--max-params", selection["--max-params"], env={"PYTHONPATH": release},
                          silent=True, success_codes=[0, 1]) or ""
        session.log(out.rstrip())
        problems += baseline_problems(version, out, compat_dir / version)
    return compat_dir, problems


def baseline_problems(version: str, export_output: str, folder: Path) -> list[str]:
    """What keeps a baseline from being compared: models whose export failed (the export's
    'FAILED' lines) and a folder that is missing or holds no model. Each would otherwise
    make its compat tests silently not collected."""
    failed = [line.strip() for line in export_output.splitlines() if ": FAILED:" in line]
    problems = [f"baseline {version}: export failed: {line}" for line in failed]
    if not folder.is_dir() or not any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        problems.append(f"baseline {version}: no artifacts in {folder} (nothing of the selection was exported)")
    return problems


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own test suite (unit, planted-bug and historic-release tests)."""
    _self_tests(session, [] if "-m" in session.posargs else ["-m", "not slow"], "harness-tests")


def _self_tests(session: nox.Session, selection: list[str], report: str) -> None:
    _install_harness(session, "test")
    session.run("python", "-m", "pytest", "tests", "-n", WORKERS, "-q", "--durations=15", *selection,
                f"--junitxml=reports/{report}.xml", *session.posargs)


@nox.session
def historic(session: nox.Session) -> None:
    """The slow self-tests: historic regressions on real timm releases (installed into
    .cache/timm-releases/) and the fingerprint end-to-end tests. Not part of CI's 20 minutes."""
    _self_tests(session, ["-m", "slow"], "harness-historic")


def _without_option(args: list[str], name: str) -> list[str]:
    out, it = [], iter(args)
    for arg in it:
        if arg == name:
            next(it, None)
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


# what compat checks without --models: the smoke set. The change-aware selection
# (`-- --models smoke,affected:previous`: plus every model a change since the previous release
# could have affected, python -m harness affected) is not the default: fingerprinting a release
# costs 5-35 s a model on 2 cores (~4 h for the zoo) until its cache exists.
DEFAULT_COMPAT_MODELS = "smoke"
CHANGE_AWARE_MODELS = "smoke,affected:previous"


@nox.session
def compat(session: nox.Session) -> None:
    """Every suite on the candidate timm, a summary table and reports under reports/.
    Default selection: the smoke set (CHANGE_AWARE_MODELS adds the affected models)."""
    candidate, baselines, pytest_args = _split_compat_args(session.posargs)
    problems: list[str] = []
    _install_harness(session)
    _install_candidate(session, candidate)
    version = session.run("python", "-c", "import timm; print(timm.__version__)",
                          silent=True).strip().splitlines()[-1]
    models = _option(pytest_args, "--models", DEFAULT_COMPAT_MODELS)
    models, export_models = _resolve_affected(session, models, _option(pytest_args, "--exclude", ""), version)
    pytest_args = ["--models", models, *_without_option(pytest_args, "--models")]
    if not any(a == "--compat-dir" or a.startswith("--compat-dir=") for a in pytest_args):
        baselines = _resolve_baselines(session, baselines, version)
        compat_dir, problems = _export_baselines(session, baselines, version, pytest_args, export_models)
        if any(p.is_dir() and p.name != version for p in compat_dir.iterdir()):
            pytest_args = ["--compat-dir", str(compat_dir), *pytest_args]
    try:
        session.run("python", "-m", "pytest", "suites", "-n", WORKERS, "-q", "-rfE",
                    "--report-dir=reports", "--junitxml=reports/junit.xml", *pytest_args)
    finally:  # the suites run first, so the report is complete; then the session fails
        if problems:
            session.error("baseline artifacts missing, so their compat checks did not run:\n  "
                          + "\n  ".join(problems))


@nox.session
def golden(session: nox.Session) -> None:
    """Compare golden outputs with the recorded ones (default selection: smoke).
    `nox -s golden -- --record [pytest args]` records instead (a record whose values CHANGED
    is kept unless `--accept-golden-changes` is passed too, after review)."""
    _install_harness(session)
    found, args = _split_flags(list(session.posargs), "--record", "--check")
    if not any(a == "--models" or a.startswith("--models=") for a in args):
        args = ["--models", "smoke", *args]
    session.run("python", "-m", "pytest", "suites", "-m", "golden", "-n", WORKERS, "-q", "-rfE",
                "--report-dir=reports", *(["--update-golden"] if found["--record"] else []), *args)


def _split_flags(posargs: list[str], *flags: str) -> tuple[dict[str, bool], list[str]]:
    """Pull the session's own flags out of posargs (``--check`` is the default, kept as a no-op)."""
    return {f: f in posargs for f in flags}, [a for a in posargs if a not in flags]


def _split_sweep_args(posargs: list[str]) -> tuple[str | None, list[str]]:
    found, rest = _split_args(posargs, "--candidate")
    return (found["--candidate"][-1] if found["--candidate"] else None), rest


@nox.session
def sweep(session: nox.Session) -> None:
    """Every check family over every registered model (numeric under --max-params,
    structural above), the slow scope included (--slow), with per-test timeouts, crash isolation (worker restarts), a memory
    guard, progress lines, and reports/{results.json,matrix.md,matrix.html,junit.xml}.
    Takes `--candidate SPEC` (as compat; default: the installed timm) and pytest args,
    e.g. `--shard 2/4`, `--models 'vit_*'`, `--expected-status expected/status-smoke.json`,
    `--compare-report old/results.json`."""
    candidate, pytest_args = _split_sweep_args(session.posargs)
    _install_harness(session)
    if candidate:
        _install_candidate(session, candidate)
    pytest_args = with_sweep_defaults(pytest_args, int(WORKERS))
    session.run("python", "-m", "pytest", "suites", "-n", WORKERS, "--group-models", "-q", "-rfE",
                "-o", "junit_family=xunit2", *pytest_args)


@nox.session(name="update-expected")
def update_expected(session: nox.Session) -> None:
    """Re-record expected/status-<scope>.json (default scope: smoke) from a fresh run, for
    review in the diff: `nox -s update-expected [-- --scope smoke]`."""
    scope, rest = "smoke", []
    args = iter(session.posargs)
    for arg in args:
        if arg == "--scope":
            scope = next(args)
        else:
            rest.append(arg)
    _install_harness(session)
    out = f"reports/expected-{scope}"
    session.run("python", "-m", "pytest", "suites", "--models", scope, "-n", WORKERS, "--group-models", "-q",
                "--report-dir", out, *rest, success_codes=[0, 1])
    session.run("python", "-m", "harness", "expected-status", "update", f"{out}/results.json", "--scope", scope)
