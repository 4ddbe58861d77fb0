"""create / pretrained: every load mode x head variant constructs, loads exactly what
the harness wrote, and honours the forward contract. Marker per parameter: 'create' for
scratch, 'pretrained' for the two pretrained modes."""
from harness.create_checks import check_variant


def test_create_variant(model_case, load_mode, head_variant, device, request):
    source = request.getfixturevalue("source_checkpoint") if load_mode.pretrained else None
    check_variant(model_case.model, device, model_case.facts.input_size, load_mode, head_variant, source)
