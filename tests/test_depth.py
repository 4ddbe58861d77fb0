"""The depth families on toys: capabilities are discovered from a model's constructor (not a
table), every discovered pool / head kwarg / in_chans / constructor kwarg becomes a case,
a broken case is kept (not swallowed by the probe), and every new assertion of create,
pretrained, the entry-kwargs round trip, the constructor kwargs and reset_classifier fails
on a toy that plants the bug it exists for while the correct toy passes. Toys:
tests/toys/toy_depth_models.py."""
from __future__ import annotations

import pytest

from harness.checks.constructor_kwargs import KwargCase, check_constructor_kwarg
from harness.checks.entry_kwargs import check_entry_kwargs
from harness.checks.pretrained import adapted_input_conv, check_variant, make_source
from harness.checks.reset_classifier import check_reset_classifier, make_subject
from harness.models.capabilities import Capabilities, capabilities_for, gather, literals
from harness.models.variants import LOAD_MODES, head_variants
from harness.registry.model_families import DEFAULT_FAMILY
from tests.toys import toy_depth_models, toy_head_conv_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)
MODES = {m.id: m for m in LOAD_MODES}
OK = "toy_depth_ok"


@pytest.fixture(scope="module")
def caps() -> Capabilities:
    return gather(OK)


def variants(name: str) -> dict:
    return {v.id: v for v in head_variants(DEFAULT_FAMILY, gather(name))}


def run_cell(name: str, mode: str, variant: str, tmp_path) -> None:
    source = make_source(name, "cpu", tmp_path, SIZE) if MODES[mode].pretrained else None
    check_variant(name, "cpu", SIZE, MODES[mode], variants(name)[variant], source)


def run_reset(name: str, **config) -> None:
    c = gather(name)
    subject = make_subject(name, "cpu", SIZE, config)
    check_reset_classifier(subject, DEFAULT_FAMILY, max_examples=2,
                           pools=tuple(p for p in (*c.pools, c.default_pool) if p is not None), unpooled=c.unpooled)


def kwarg_case(name: str, cid: str) -> KwargCase:
    kwargs = gather(name).ctor_kwargs[cid]
    return KwargCase(cid, dict(kwargs), next(iter(kwargs)))


# ---------------------------------------------------------------- discovery

def test_literals_are_what_the_code_compares_with():
    src = "if pool_type.startswith('fast'):\n  if pool_type.endswith('avgmax'): pass\nassert global_pool in ('', 'avg')"
    assert literals(src, ("global_pool", "pool_type")) == {"", "avg", "fastavgmax"}


def test_capabilities_are_read_from_the_constructor(caps):
    assert caps.default_pool == "token"
    assert caps.pools == ("avg", "avgmax", "map", "max")  # the literals of ToyViT's assert, default excluded
    assert caps.unpooled and caps.attn_pools == ("map",) and caps.num_prefix_tokens == 1 and caps.fixed_input_size
    assert caps.in_chans == (1, 4)
    assert set(caps.entry_kwargs) == {"embed_dim", "patch_size", "bug"}
    assert set(caps.ctor_kwargs) == {"drop_rate_0.25", "drop_path_rate_0.25", "init_values_0.0123", "class_token_False",
                                     "no_embed_class_True", "reg_tokens_2", "pos_embed_", "pos_embed_none",
                                     "act_layer_silu"}
    assert caps.ctor_kwargs["class_token_False"] == {"class_token": False, "global_pool": "avg"}  # the companion
    assert caps.broken == {}


def test_capabilities_round_trip_through_the_cache(caps):
    store = {}
    first = capabilities_for(OK, store.get, store.__setitem__)
    assert first == caps and len(store) == 1
    assert capabilities_for(OK, store.get, lambda *a: pytest.fail("recomputed")) == caps


def test_a_constructor_that_crashes_keeps_its_case():
    """The probe must not decide the case away: 'avgmax' is accepted, then the constructor
    crashes; the case exists and the create check fails with the exception."""
    c = gather("toy_depth_pool_crash")
    assert "avgmax" in c.pools and "planted" in c.broken["global_pool_avgmax"]
    with pytest.raises(AssertionError, match="global_pool='avgmax'.*planted: the avgmax head cannot be built"):
        run_cell("toy_depth_pool_crash", "scratch", "global_pool_avgmax", None)


# ---------------------------------------------------------------- create / pretrained

@pytest.mark.parametrize("mode, variant", [(m, v.id) for v in variants(OK).values() for m in sorted(MODES)
                                           if v.applies_to(MODES[m])])
def test_correct_toy_passes_every_cell(mode, variant, tmp_path):
    run_cell(OK, mode, variant, tmp_path)


@pytest.mark.parametrize("name, mode, variant, message", [
    ("toy_depth_pool_substituted", "scratch", "global_pool_max",
     r"create_model\(global_pool='max'\) built a model whose pool type is 'avg'"),
    ("toy_depth_pool_substituted", "pretrained", "global_pool_max", r"pool type is 'avg'"),
    ("toy_depth_in_chans_first_channel", "pretrained", "in_chans_1",
     r"patch_embed.proj.weight: not the documented in_chans=1 adaptation"),
    ("toy_depth_in_chans_first_channel", "pretrained", "in_chans_4", r"not the documented in_chans=4 adaptation"),
])
def test_create_and_pretrained_catch_planted_bug(name, mode, variant, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        run_cell(name, mode, variant, tmp_path)


def test_adapted_input_conv_follows_the_definition():
    import torch

    w = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)
    assert adapted_input_conv(w, 1).flatten().tolist() == [3.0, 12.0]            # sum of the channels
    four = adapted_input_conv(w, 4)[:, :, 0, 0]
    assert four.tolist() == [[0.0, 0.75, 1.5, 0.0], [2.25, 3.0, 3.75, 2.25]]      # cyclic, x 3/4
    s2d = torch.arange(1 * 6, dtype=torch.float32).reshape(1, 6, 1, 1)            # a 2-group space-to-depth stem
    assert adapted_input_conv(s2d, 1).flatten().tolist() == [3.0, 12.0]
    assert adapted_input_conv(s2d, 4) is None                                     # documented: random init


# ---------------------------------------------------------------- entry kwargs, constructor kwargs

def test_entry_kwargs_round_trip():
    trip = check_entry_kwargs(OK, "cpu", SIZE)
    assert trip.passed == {"embed_dim": 16, "patch_size": 8} and set(trip.fixed) == {"bug"}
    with pytest.raises(AssertionError, match=r"passed other kwargs to build_model_with_cfg \(1\):\n  "
                                             r"embed_dim: 16 -> 32"):
        check_entry_kwargs("toy_depth_entry_doubles", "cpu", SIZE)


@pytest.mark.parametrize("cid", sorted(gather(OK).ctor_kwargs))
def test_correct_toy_passes_every_constructor_kwarg(cid):
    check_constructor_kwarg(OK, "cpu", SIZE, kwarg_case(OK, cid))


@pytest.mark.parametrize("bug, cid, message", [
    ("ls_ignored", "init_values_0.0123", r"ls.gamma: values in \[1, 1\]"),
    ("drop_in_eval", "drop_rate_0.25", r"eval-mode output 0 vs the model built without drop_rate differs"),
    ("drop_unwired", "drop_path_rate_0.25", r"train-mode output equals the model built without drop_path_rate"),
    ("lost_class_token", "pos_embed_none", r"forward_features returns 16 tokens, expected num_prefix_tokens \(1\) "
                                           r"\+ 16 patches = 17"),
    ("act_ignored", "act_layer_silu", r"no SiLU module in the built model"),
])
def test_constructor_kwargs_catch_planted_bug(bug, cid, message):
    name = f"toy_depth_{bug}"
    with pytest.raises(AssertionError, match=message):
        check_constructor_kwarg(name, "cpu", SIZE, kwarg_case(name, cid))


@pytest.mark.parametrize("model_name", ["efficientnet_lite0", "resnetv2_50d"])
def test_a_norm_layer_built_in_its_norm_act_form_counts(model_name):
    """norm_layer='layernorm2d' on a model that fuses norm and activation builds LayerNormAct2d
    (get_norm_act_layer), not LayerNorm2d: the kwarg is honoured (the random48 bench failed
    five such models before)."""
    from harness.checks.constructor_kwargs import _layer_classes, check_module
    from timm.layers import LayerNorm2d, LayerNormAct2d
    assert _layer_classes("norm_layer", "layernorm2d") == (LayerNorm2d, LayerNormAct2d)
    check_module(model_name, "meta", (3, 64, 64), KwargCase("norm_layer_layernorm2d", {"norm_layer": "layernorm2d"},
                                                            "norm_layer"))


@pytest.mark.parametrize("model_name", ["resnetv2_50d_evos", "resnetv2_50d_frn"])
def test_act_layer_on_a_model_whose_norms_carry_the_nonlinearity_only_builds_and_runs(model_name):
    """EvoNorm S0 and FRN+TLU hold no activation module: act_layer has nothing to replace (the
    zoo's shard 2 failed resnetv2_50d_evos on 'no SiLU module'). The toy whose default holds a
    GELU and ignores act_layer still fails (test_constructor_kwargs_catch_planted_bug)."""
    from harness.checks.constructor_kwargs import _has_activation, check_module
    from harness.models import build
    assert not _has_activation(build.create(model_name, device="meta"))
    assert _has_activation(build.create("resnetv2_50d", device="meta"))
    check_module(model_name, "meta", (3, 64, 64), KwargCase("act_layer_silu", {"act_layer": "silu"}, "act_layer"))


@pytest.mark.parametrize("model_name, layout", [
    ("resnetv2_50d_gn", "2d"),          # default partial(GroupNormAct): a GroupNorm, whatever its name
    ("vit_small_r26_s32_224", "last"),  # a ViT (norm_layer=None, LayerNorm) on a GroupNorm ResNet backbone
    ("vit_base_mci_224", "last"),       # a ViT on a BatchNorm2d conv stem (the zoo's shard 11 offered it layernorm2d)
    ("convnext_atto", "2d"),            # norm_layer=None, LayerNorm2d in the model
    ("vit_tiny_patch16_224", "last"),
])
def test_picked_norms_take_the_layout_of_the_norm_the_kwarg_builds(model_name, layout):
    """resnetv2_50d_gn was offered 'rmsnorm' (its GroupNormAct has no '2d' in its name) and
    failed 'Given normalized_shape=[32], expected input with shape [*32]' in the random48 bench;
    reading GroupNorm from the model instead would offer a hybrid ViT a 2d norm it cannot take."""
    from harness.registry.capability_rules import NORM_CHOICES_2D, NORM_CHOICES_LAST
    picked = [kw["norm_layer"] for cid, kw in gather(model_name).ctor_kwargs.items() if cid.startswith("norm_layer_")]
    assert picked and set(picked) <= set(NORM_CHOICES_2D if layout == "2d" else NORM_CHOICES_LAST), picked


def test_layer_scales_fixed_by_design_are_excluded_and_the_others_still_checked(monkeypatch):
    """SwiftFormer fixes its ConvEncoder / LocalRepresentation layer scales at 1 (a table
    entry with the reason); the value must still reach its attention blocks' layer scales."""
    from timm.models import swiftformer
    from harness.registry import model_families
    case = kwarg_case("swiftformer_xs", "layer_scale_init_value_0.0123")
    assert model_families.fixed_layer_scale("swiftformer_xs", "stages.0.blocks.0.layer_scale.gamma")
    assert model_families.fixed_layer_scale("swiftformer_xs", "stages.3.blocks.2.layer_scale_1.gamma") is None
    check_constructor_kwarg("swiftformer_xs", "cpu", (3, 64, 64), case)
    monkeypatch.setattr(model_families, "FIXED_LAYER_SCALES", ())
    with pytest.raises(AssertionError, match=r"stages\.0\.blocks\.0\.layer_scale\.gamma: values in \[1, 1\]"):
        check_constructor_kwarg("swiftformer_xs", "cpu", (3, 64, 64), case)
    monkeypatch.undo()
    real = swiftformer.LayerScale2d
    ignored = type("LayerScale2dIgnoringValue", (real,), {
        "__init__": lambda self, dim, init_values=1e-5, **kw: real.__init__(self, dim, 1.0, **kw)})
    monkeypatch.setattr(swiftformer, "LayerScale2d", ignored)
    with pytest.raises(AssertionError, match=r"layer_scale_1\.gamma: values in \[1, 1\]"):
        check_constructor_kwarg("swiftformer_xs", "cpu", (3, 64, 64), case)


def test_constructor_kwargs_on_the_meta_device():
    for cid in ("reg_tokens_2", "pos_embed_none", "class_token_False"):
        check_constructor_kwarg(OK, "meta", SIZE, kwarg_case(OK, cid))
    with pytest.raises(AssertionError, match="forward_features returns 16 tokens"):
        check_constructor_kwarg("toy_depth_lost_class_token", "meta", SIZE,
                                kwarg_case("toy_depth_lost_class_token", "pos_embed_none"))


# ---------------------------------------------------------------- reset_classifier across pools

@pytest.mark.parametrize("config", [{}, {"global_pool": "avg"}, {"global_pool": "map"}, {"num_classes": 0},
                                    {"num_classes": 0, "global_pool": "max"}])
def test_correct_toy_passes_reset_for_every_pool(config):
    run_reset(OK, **config)


@pytest.mark.parametrize("name, config, message", [
    ("toy_depth_reset_ignores_pool", {},
     r"after reset_classifier\(1005, 'avg'\): pool type is 'token', expected 'avg'"),
    ("toy_depth_reset_headless_avg", {"num_classes": 0},
     r"after reset_classifier\(0\): pooling configuration changed:\n  global_pool: 'token' -> 'avg'"),
])
def test_reset_classifier_catches_planted_bug(name, config, message):
    with pytest.raises(AssertionError, match=message):
        run_reset(name, **config)


def test_reset_headless_bug_hides_with_a_head():
    """reset_headless_avg only misbehaves after num_classes=0 construction: the reset configs
    include it for that reason."""
    run_reset("toy_depth_reset_headless_avg")


def test_the_reset_check_makes_the_calls_of_its_plan(monkeypatch):
    """check_reset_classifier and the fingerprint steps (harness.checks.exercise) both read
    reset_plan: the sequences the check applies are the plan's, so code that only the check
    runs cannot be missing from a model's fingerprint."""
    from harness.checks import reset_classifier as rc

    applied, switched = [], []
    real_apply, real_switch = rc.apply_resets, rc.switch_pools
    monkeypatch.setattr(rc, "apply_resets", lambda s, calls, keeps_pool: applied.append((calls, keeps_pool))
                        or real_apply(s, calls, keeps_pool))
    monkeypatch.setattr(rc, "switch_pools", lambda s, pools, n, sig: switched.append((tuple(pools), n))
                        or real_switch(s, pools, n, sig))
    c = gather(OK)
    pools = tuple(p for p in (*c.pools, c.default_pool) if p is not None)
    subject = make_subject(OK, "cpu", SIZE, {})
    check_reset_classifier(subject, DEFAULT_FAMILY, max_examples=2, pools=pools, unpooled=c.unpooled)
    plan = rc.reset_plan(subject.num_classes, subject.pool, DEFAULT_FAMILY, pools, c.unpooled)
    own = [a for a in applied if len(a[0]) == 1 and len(a[0][0]) == 2 and a[0][0][1] == subject.pool]
    assert [a for a in applied if a not in own] == [(list(f), True) for f in plan.fixed] + [([(0, "")], False)]
    assert plan.unpooled and len(own) == 2 and switched == [(plan.switches, plan.switch_classes)]
    assert {tuple(calls) for calls, _ in plan.sequences()} >= {((plan.switch_classes, q), (subject.num_classes,
                                                              subject.pool)) for q in plan.switches}


# ---------------------------------------------------------------- a pool that needs other weights

@pytest.mark.parametrize("config", [{}, {"global_pool": "catavgmax"}, {"num_classes": 0, "global_pool": "max"}])
def test_refusing_a_pool_of_another_width_passes(config):
    """catavgmax doubles the width conv_head after the pool was built for (MobileNetV3, timm
    1.0.31): refusing it (and the unpooled (0, '') for a catavgmax model) is honest."""
    run_reset("toy_head_conv_ok", **config)


@pytest.mark.parametrize("name, message", [
    ("toy_head_conv_refuses_same_width", r"reset_classifier\(1005, 'max'\) refused a pool the constructor accepts"),
    ("toy_head_conv_accepts_width_change",
     r"after reset_classifier\(1005, 'catavgmax'\): the forward raised RuntimeError"),
])
def test_a_pool_refusal_is_judged_by_the_weights_it_needs(name, message):
    with pytest.raises(AssertionError, match=message):
        run_reset(name)
