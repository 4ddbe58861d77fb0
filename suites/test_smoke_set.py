"""The smoke set itself: a model of ``SMOKE_MODELS`` that the candidate no longer registers
fails ("model removed", marker create), and so does a ``SMOKE_SCOPES`` pattern that selects
no test of its check family (marked with that family). Both are collected only when there is
something to report, so on a healthy run this module adds no test."""
import pytest

from harness.models import build


@pytest.mark.create
@pytest.mark.cases("removed")
def test_model_registered(model_case):
    pytest.fail(f"model removed: {model_case.model} is in the smoke set (harness/registry/smoke.py SMOKE_MODELS) "
                f"but timm {build.timm_version()} no longer registers it", pytrace=False)


@pytest.mark.cases("smoke_scopes")
def test_smoke_scope_selects(model_case, scope):
    family, pattern = scope
    pytest.fail(f"the {family} smoke scope pattern {pattern!r} (harness/registry/smoke.py SMOKE_SCOPES) selects no "
                f"{family} test of the smoke set on timm {build.timm_version()}: its cases vanished", pytrace=False)
