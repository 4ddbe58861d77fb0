"""create / pretrained: every load mode x head variant (discovered pools, head kwargs and
in_chans included) constructs, loads exactly what the harness wrote, and honours the forward
contract. Marker per parameter: 'create' for scratch, 'pretrained' for the two pretrained
modes. Also under 'create': the entry-point kwargs round trip and every discovered
constructor kwarg (drop rates, init values, token options, norm / act choices)."""
import pytest

from harness.checks.constructor_kwargs import check_constructor_kwarg
from harness.checks.create import check_create
from harness.checks.entry_kwargs import check_entry_kwargs
from harness.checks.pretrained import check_variant


@pytest.mark.cases("create")
def test_create_variant(model_case, load_mode, head_variant, device, request):
    size = model_case.facts.input_size
    if load_mode.pretrained:
        check_variant(model_case.model, device, size, load_mode, head_variant,
                      request.getfixturevalue("source_checkpoint"), model_case.family.loads_pretrained)
    else:
        check_create(model_case.model, device, size, load_mode, head_variant)


@pytest.mark.create
@pytest.mark.cases("entry_kwargs")
def test_entry_kwargs(model_case, device):
    check_entry_kwargs(model_case.model, device, model_case.facts.input_size)


@pytest.mark.create
@pytest.mark.cases("constructor_kwargs")
def test_constructor_kwarg(model_case, kwarg_case, device):
    check_constructor_kwarg(model_case.model, device, model_case.facts.input_size, kwarg_case)
