"""Whether the timm under test claims a model scripts or traces: its own test exclusion
lists (registry.support_claims), read from the candidate's ``tests/test_models.py`` when
it ships one (a checkout), else from the recorded table row for its version."""
from __future__ import annotations

import ast
import fnmatch
import functools
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from harness.models import build
from harness.registry.support_claims import CLAIMS, SupportClaim

TRANSFORM_LISTS = {"jit": "EXCLUDE_JIT_FILTERS", "fx": "EXCLUDE_FX_FILTERS"}


def _literal_lists(source: str) -> dict[str, list[str]]:
    """Top-level list assignments of a test module, and those of the branch that runs
    outside GitHub Actions (the ``else`` of ``if 'GITHUB_ACTIONS' in os.environ``)."""
    tree = ast.parse(source)
    found: dict[str, list[str]] = {}
    for node in tree.body:
        body = node.orelse if isinstance(node, ast.If) and "GITHUB_ACTIONS" in ast.dump(node.test) else [node]
        for stmt in body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    value = ast.literal_eval(stmt.value)
                except ValueError:
                    continue
                if isinstance(value, list):
                    found[stmt.targets[0].id] = value
    return found


def claim_from_tests(path: Path) -> SupportClaim:
    """The exclusion lists of a timm checkout's tests/test_models.py."""
    lists = _literal_lists(path.read_text())
    return SupportClaim("", tuple(lists.get("EXCLUDE_FILTERS", ())), tuple(lists.get("EXCLUDE_JIT_FILTERS", ())),
                        tuple(lists.get("EXCLUDE_FX_FILTERS", ())), str(path))


def claim_for_version(version: str) -> SupportClaim:
    """The recorded row for a release; a release newer than every row gets the last."""
    v = Version(version)
    for claim in CLAIMS:
        if SpecifierSet(claim.timm).contains(v, prereleases=True):
            return claim
    return CLAIMS[-1]


@functools.lru_cache(maxsize=None)
def candidate_claim() -> SupportClaim:
    tests = Path(build.timm_package_dir()).parent / "tests" / "test_models.py"
    return claim_from_tests(tests) if tests.is_file() else claim_for_version(build.timm_version())


def claims(transform: str, model_name: str, claim: SupportClaim | None = None) -> bool:
    """Whether timm's own tests hold ``model_name`` to ``transform`` ('jit' or 'fx')."""
    claim = claim or candidate_claim()
    excluded = claim.exclude + (claim.jit_exclude if transform == "jit" else claim.fx_exclude)
    return not any(fnmatch.fnmatchcase(model_name, p) for p in excluded)
