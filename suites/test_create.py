"""create / pretrained: every load mode x head variant constructs, loads exactly what
the harness wrote, and honours the forward contract. Marker per parameter: 'create' for
scratch, 'pretrained' for the two pretrained modes."""
import pytest

from harness.checks.create import check_create
from harness.checks.pretrained import check_pretrained


@pytest.mark.cases("create")
def test_create_variant(model_case, load_mode, head_variant, device, request):
    size = model_case.facts.input_size
    if load_mode.pretrained:
        check_pretrained(model_case.model, device, size, load_mode, head_variant,
                         request.getfixturevalue("source_checkpoint"))
    else:
        check_create(model_case.model, device, size, load_mode, head_variant)
