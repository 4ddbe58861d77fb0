"""Old timm releases installed beside the shared torch: ``pip install --no-deps --target
.cache/timm-releases/<version> timm==<version>`` (timm is pure Python), then put first on
PYTHONPATH. One function for the historic tests and the compat session, so both reuse the
same installs. This module imports neither torch nor timm (nox runs it before either)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.registry.paths import CACHE_DIR

RELEASES = CACHE_DIR / "timm-releases"


def timm_release(version: str, root: Path = RELEASES) -> Path:
    """An installed copy of timm==version under root/version (atomic: installed into a
    staging directory and renamed, so parallel workers and sessions can share it)."""
    target = root / version
    if not (target / "timm").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".{version}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        str(staging), f"timm=={version}"], check=True)
        try:
            staging.rename(target)
        except OSError:  # another worker won the race
            shutil.rmtree(staging, ignore_errors=True)
    return target


class ReleaseError(RuntimeError):
    """A release that cannot be found on the package index; the message says which."""


def index_versions() -> list[str]:
    """timm's release versions on the package index (``pip index versions timm``)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "timm"],
                          capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("Available versions:")), "")
    if not line:
        raise ReleaseError(f"`pip index versions timm` listed no versions (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]


def previous_release(version: str, versions: list[str] | None = None) -> str:
    """The newest final release older than ``version``: what 'previous' means for the
    compat session's baselines and for ``affected:previous``."""
    from packaging.version import InvalidVersion, Version

    def parse(v: str):
        try:
            return Version(v)
        except InvalidVersion:
            return None
    current = parse(version)
    if current is None:
        raise ReleaseError(f"'previous': {version!r} is not a version")
    older = [v for v in map(parse, index_versions() if versions is None else versions)
             if v is not None and not v.is_prerelease and v < Version(current.base_version)]
    if not older:
        raise ReleaseError(f"'previous': no timm release older than {version} on the index")
    return str(max(older))


def main(argv: list[str]) -> int:
    """python -m harness releases VERSION...: install each release, print its path;
    ``--previous VERSION``: print the newest release older than VERSION."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m harness releases VERSION [VERSION ...]\n"
              "       python -m harness releases --previous VERSION\n\n"
              "Install timm==VERSION with --no-deps under .cache/timm-releases/VERSION and print the path;\n"
              "--previous prints the newest final release on the index older than VERSION.")
        return 0 if argv else 2
    if argv[0] == "--previous":
        try:
            print(previous_release(argv[1] if len(argv) > 1 else ""))
        except ReleaseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    for v in argv:
        print(timm_release(v))
    return 0
