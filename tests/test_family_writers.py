"""Checkpoint families: detection from pretrained configs, and each writer proven by a
round trip: write the family's native layout, load it with pretrained=True through the
file overlay, and every tensor and the output equal the source model exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.models import build
from harness.models import checkpoint_sources as cf
from harness.weights.deterministic import fill_deterministic, make_input
from harness.weights.family_writers import UnsupportedLayout, load_overlay, write_family

TINY = dict(embed_dim=64, depth=2, num_heads=2, img_size=32, patch_size=8)
DINO = dict(embed_dim=64, depth=2, num_heads=2, img_size=28)
ROUND_TRIPS = [
    ("timm", "vit_tiny_patch16_224.augreg_in21k", TINY),
    ("vit_jax_npz", "vit_tiny_patch16_224.augreg_in21k", TINY),
    ("big_vision_npz", "flexivit_small.1200ep_in1k", dict(TINY, num_classes=10)),
    ("openai_clip", "vit_base_patch16_clip_224.openai", TINY),
    ("openai_clip", "vit_base_patch16_clip_quickgelu_224.openai", TINY),
    ("open_clip", "vit_base_patch16_clip_224.laion2b", TINY),
    ("open_clip_ddp", "vit_base_patch16_clip_224.metaclip_2pt5b", TINY),
    ("dinov2", "vit_small_patch14_dinov2.lvd142m", DINO),
    ("dinov2", "vit_small_patch14_reg4_dinov2.lvd142m", DINO),
    ("dinov2", "vit_giant_patch14_dinov2.lvd142m", dict(DINO, embed_dim=96)),  # SwiGLU: w12/w3
    ("ijepa", "vit_huge_patch14_gap_224.in1k_ijepa", DINO),
    ("open_clip_trunk", "eva02_tiny_patch14_224.mim_in22k", dict(num_classes=16)),  # open_clip builds the trunk
]


def write_and_load(family: str, tag: str, kwargs: dict, tmp_path):
    model = build.create(tag, **kwargs)
    fill_deterministic(model, tag)
    path = write_family(family, model, tag, tmp_path)
    # the overlay's num_classes matches the model's, so timm keeps the (projection) head
    overlay = dict(load_overlay(family, path), num_classes=model.num_classes)
    loaded = build.create(tag, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    return model, loaded, path


@pytest.mark.parametrize("family, tag, kwargs", ROUND_TRIPS, ids=[f"{f}-{t}" for f, t, _ in ROUND_TRIPS])
def test_writer_round_trip_is_exact(family, tag, kwargs, tmp_path):
    source, loaded, _ = write_and_load(family, tag, kwargs, tmp_path)
    src, got = source.state_dict(), loaded.state_dict()
    assert src.keys() == got.keys()
    assert [k for k in src if not torch.equal(src[k], got[k])] == []
    x = make_input(tag, (3, *source.patch_embed.img_size))
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))


def test_layouts_are_the_families_own(tmp_path):
    import open_clip  # noqa: F401 - the OpenAI/OpenCLIP layouts come from open_clip's modules

    _, _, p = write_and_load("openai_clip", "vit_base_patch16_clip_224.openai", TINY, tmp_path / "a")
    sd = torch.load(p)
    assert sd["visual.conv1.weight"].dtype == torch.float16 and sd["visual.ln_pre.weight"].dtype == torch.float32
    assert {"input_resolution", "context_length", "vocab_size", "logit_scale", "token_embedding.weight"} <= set(sd)
    _, _, p = write_and_load("open_clip_ddp", "vit_base_patch16_clip_224.metaclip_2pt5b", TINY, tmp_path / "b")
    ddp = torch.load(p)
    assert "module.visual.class_embedding" in ddp["state_dict"] and "module.logit_scale" in ddp["state_dict"]
    _, _, p = write_and_load("dinov2", "vit_small_patch14_reg4_dinov2.lvd142m", DINO, tmp_path / "c")
    dino = torch.load(p)
    assert {"mask_token", "register_tokens"} <= set(dino) and dino["pos_embed"].shape[1] == 1 + 4
    _, _, p = write_and_load("vit_jax_npz", "vit_tiny_patch16_224.augreg_in21k", TINY, tmp_path / "d")
    npz = np.load(p)
    assert npz["embedding/kernel"].shape == (8, 8, 3, 64)  # HWIO
    assert npz["Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"].shape == (64, 2, 32)


def test_writer_refuses_a_model_its_layout_cannot_hold(tmp_path):
    model = build.create("vit_tiny_patch16_224", **TINY)  # patch bias, no norm_pre: not a CLIP tower
    with pytest.raises(UnsupportedLayout, match="cannot carry|no timm counterpart"):
        write_family("open_clip", model, "vit_tiny_patch16_224", tmp_path)
    with pytest.raises(UnsupportedLayout, match="no writer"):
        write_family("mobileclip", model, "vit_tiny_patch16_224", tmp_path)


@pytest.mark.parametrize("cfg, model, tag, source, family", [
    (dict(hf_hub_id="laion/x", hf_hub_filename="open_clip_pytorch_model.bin"), "vit_base_patch16_clip_224",
     "laion2b", "hub", "open_clip"),
    (dict(hf_hub_id="timm/x", hf_hub_filename="open_clip_pytorch_model.bin"), "vit_base_patch16_clip_224",
     "openai", "hub", "openai_clip"),
    (dict(hf_hub_id="facebook/x", hf_hub_filename="metaclip_b16_fullcc2.5b.bin"), "vit_base_patch16_clip_224",
     "metaclip_2pt5b", "hub", "open_clip_ddp"),
    (dict(hf_hub_id="timm/x", hf_hub_filename="open_clip_pytorch_model.bin"), "convnext_base", "clip_laion2b", "hub",
     "open_clip_trunk"),
    (dict(hf_hub_id="timm/"), "resnet50", "a1_in1k", "hub", "timm"),
    (dict(url="https://storage.googleapis.com/vit_models/augreg/Ti_16.npz", custom_load=True), "vit_tiny_patch16_224",
     "augreg_in21k", "url", "vit_jax_npz"),
    (dict(url="https://storage.googleapis.com/big_vision/flexivit/flexivit_s_i1k.npz", custom_load=True),
     "flexivit_small", "1200ep_in1k", "url", "big_vision_npz"),
    (dict(url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"),
     "vit_small_patch14_dinov2", "lvd142m", "url", "dinov2"),
])
def test_family_rules(cfg, model, tag, source, family):
    assert cf.classify(cfg, model, tag, source) == family


def test_real_tags_are_classified_as_timm_loads_them():
    dino = cf.tag_families("vit_small_patch14_dinov2.lvd142m")
    assert (dino.primary, dino.fallback, dino.origin) == ("timm", "dinov2", "DINOv2")
    augreg = cf.tag_families("vit_tiny_patch16_224.augreg_in21k")
    assert augreg.families == ("timm", "vit_jax_npz")
    rows = cf.all_tag_families()
    assert len(rows) == len(__import__("timm").list_pretrained())
    assert all(r.families for r in rows), [r.tag for r in rows if not r.families][:5]


def test_family_report_cli(tmp_path, capsys):
    assert cf.main(["--report", str(tmp_path / "checkpoint_families.md"), "--models", "vit_base_patch16_clip_224"]) == 0
    text = (tmp_path / "checkpoint_families.md").read_text()
    assert "| `timm` |" in text and "vit_base_patch16_clip_224: " in text
