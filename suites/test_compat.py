"""compat: artifacts written by other timm releases (``--compat-dir``, from ``python -m
harness export``) still load in the candidate. Ids: '<model>-<baseline version>'.
Not collected without --compat-dir (``-m compat`` without it is a usage error)."""
import pytest

from harness.checks.compat import check_pickle, check_state_dict

pytestmark = [pytest.mark.compat, pytest.mark.cases("compat")]


def test_compat_state_dict(model_case, compat_artifact, device):
    check_state_dict(compat_artifact, device)


def test_compat_pickle(model_case, compat_artifact, device):
    check_pickle(compat_artifact, device)
