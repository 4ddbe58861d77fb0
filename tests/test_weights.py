"""Deterministic weights: independent of timm's init and of the global RNG, stable per
(model, tensor) name, and scaled so deep nets stay finite."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.models import build
from harness.weights.deterministic import deterministic_value, fill_deterministic, make_input, seed_for


def _filled(name: str, seed: int):
    torch.manual_seed(seed)  # timm's init draws from the global RNG; ours must not care
    return fill_deterministic(build.create(name), name).state_dict()


def test_same_model_same_numbers_whatever_timm_init_drew():
    a, b = _filled("resnet18", 0), _filled("resnet18", 1)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_seeds_depend_on_model_and_tensor_name():
    assert seed_for("resnet18", "fc.weight") != seed_for("resnet18", "fc.bias")
    assert seed_for("resnet18", "fc.weight") != seed_for("resnet34", "fc.weight")
    assert seed_for("resnet18", "fc.weight") == seed_for("resnet18", "fc.weight")


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(["layer1.0.bn1.running_var", "blocks.3.norm1.weight", "head.bias",
                            "stem.conv.weight", "pos_embed", "bn.running_mean"]),
       shape=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_values_are_finite_and_variances_positive(key, shape):
    value = deterministic_value("m", key, torch.empty(shape))
    assert torch.isfinite(value).all()
    if key.endswith("running_var"):
        assert (value > 0).all()


def test_integer_and_constant_buffers_are_kept():
    """Index tables, masks and counters are derived by the constructor: never overwritten."""
    model = build.create("resnet18")
    model.register_buffer("mask", torch.ones(4))  # a constant float buffer, like an attention mask
    before = {k: v.clone() for k, v in model.state_dict().items()
              if not v.is_floating_point() or k == "mask"}
    fill_deterministic(model, "resnet18")
    after = model.state_dict()
    assert "bn1.num_batches_tracked" in before and "mask" in before
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(after["bn1.running_var"], torch.ones_like(after["bn1.running_var"]))


def test_filled_deep_nets_give_finite_outputs():
    for name in ("resnet50", "vit_small_patch16_224", "convnext_atto"):
        model = fill_deterministic(build.create(name), name)
        with torch.no_grad():
            out = model(make_input(name, (3, 128, 128) if "vit" not in name else (3, 224, 224)))
        assert torch.isfinite(out).all(), name
        assert out.std() > 1e-3, name  # not collapsed to a constant


def test_input_is_seeded():
    torch.testing.assert_close(make_input("a", (3, 8, 8)), make_input("a", (3, 8, 8)), rtol=0, atol=0)
    assert not torch.equal(make_input("a", (3, 8, 8)), make_input("b", (3, 8, 8)))
