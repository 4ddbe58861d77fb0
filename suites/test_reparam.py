"""reparam: reparameterize_model keeps outputs within the model's own float32 noise, adds
no parameters, leaves no called module None, is idempotent, and its state_dict loads
strictly into a fresh reparameterized model. Only reparameterizable models are collected."""
import pytest

from harness.checks.reparam import check_reparam

pytestmark = [pytest.mark.reparam, pytest.mark.cases("reparam")]


def test_reparam_equivalence(model_case, device):
    check_reparam(model_case.model, device, model_case.facts.input_size)
