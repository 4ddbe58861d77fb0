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


def main(argv: list[str]) -> int:
    """python -m harness releases VERSION...: install each release, print its path."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m harness releases VERSION [VERSION ...]\n\n"
              "Install timm==VERSION with --no-deps under .cache/timm-releases/VERSION and print the path.")
        return 0 if argv else 2
    for v in argv:
        print(timm_release(v))
    return 0
