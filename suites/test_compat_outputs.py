"""compat, differential outputs: for every selected model and every baseline release in
--compat-dir whose artifacts hold reference outputs (`python -m harness export DIR
[--outputs-only]` under that release), the candidate's outputs on the same deterministic
weights equal the baseline's within the model's own float32 noise; otherwise 'changed since
<version>: ...'. Ids: '<model>-<baseline version>'. Changes made on purpose are declared in
harness/registry/intended_changes.py (strict expected failures)."""
import pytest

from harness.checks.differential import check_outputs

pytestmark = [pytest.mark.compat, pytest.mark.cases("compat_outputs")]


def test_compat_outputs(model_case, compat_artifact, device):
    check_outputs(compat_artifact, device)
