"""A copy of the importable timm with a regression planted in its own files, for tests that
run the suites against it (``run_suites(args, tmp_path, [planted_timm(tmp_path, edits)])``):
the harness is then checked against a real timm, changed the way a release could change it,
not against a toy."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Mapping, Union

import timm

Edit = Union[tuple[str, str], Callable[[str], str]]  # (old, new): old must occur exactly once


def apply_edit(text: str, edit: Edit, where: str) -> str:
    if callable(edit):
        changed = edit(text)
    else:
        old, new = edit
        if text.count(old) != 1:
            raise AssertionError(f"the planted edit of {where} does not apply to timm {timm.__version__}: "
                                 f"{old!r} occurs {text.count(old)} times (expected once)")
        changed = text.replace(old, new)
    if changed == text:
        raise AssertionError(f"the planted edit of {where} changed nothing")
    return changed


def planted_timm(tmp_path: Path, edits: Mapping[str, Edit]) -> Path:
    """Copy the importable timm package to ``tmp_path/planted/timm`` and apply ``edits``
    ({path under timm/: edit}); returns the folder to put first on PYTHONPATH."""
    root = tmp_path / "planted"
    shutil.copytree(Path(timm.__file__).parent, root / "timm", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, edit in edits.items():
        path = root / "timm" / rel
        path.write_text(apply_edit(path.read_text(), edit, rel))
    return root


def insert_after(anchor: str, code: str, start: str = "") -> Callable[[str], str]:
    """An edit inserting ``code`` after the first ``anchor`` line that follows ``start``."""
    def edit(text: str) -> str:
        begin = text.index(start) if start else 0
        at = text.index(anchor, begin) + len(anchor)
        return text[:at] + code + text[at:]
    return edit
