"""Tiny CLIP-style ViTs registered only by the harness's own tests, each with a checkpoint
filter that plants one per-family bug the patch_size check must catch. Importing this
module registers them (also as a pytest plugin: ``-p tests.toys.toy_patch_models``).

Each model has two pretrained tags whose configs select two checkpoint families through
the real detection rules: ``.laion`` (an OpenCLIP hub file) and ``.timm`` (timm native).
"""
from __future__ import annotations

import torch.nn.functional as F
from timm.models import build_model_with_cfg
from timm.models import vision_transformer as vit

from harness.registry.model_families import register_patch_size_module
from tests.toys.registry import register_toys, toy_cfg

BUGS = (
    "ok",
    "openclip_early_return",   # timm 0.9.16: returns from the filter before resampling (OpenCLIP layout only)
    "naive_resize",            # resizes the patch kernel like an image instead of the PI-resize
)
ARGS = dict(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=1, pre_norm=True, num_classes=16)


def _filter(bug: str):
    def checkpoint_filter_fn(state_dict, model):
        if bug == "openclip_early_return" and "visual.class_embedding" in state_dict:
            return vit._convert_openai_clip(state_dict, model)
        if bug == "naive_resize":
            state_dict = dict(state_dict)
            w = state_dict.get("patch_embed.proj.weight")
            size = model.patch_embed.proj.weight.shape[-2:]
            if w is not None and w.shape[-2:] != size:
                state_dict["patch_embed.proj.weight"] = F.interpolate(w, size=size, mode="bicubic")
        return vit.checkpoint_filter_fn(state_dict, model)
    return checkpoint_filter_fn


def _cfg(**kwargs):
    return toy_cfg(num_classes=16, pool_size=None, first_conv="patch_embed.proj", fixed_input_size=True, **kwargs)


def _builder(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(
        vit.VisionTransformer, name, pretrained, pretrained_filter_fn=_filter(bug), **{**ARGS, **kwargs})


NAMES = [f"toy_vit_{b}" for b in BUGS]
register_toys(globals(), {name: _builder(name, name[len("toy_vit_"):]) for name in NAMES}, {
    **{f"{n}.laion": _cfg(hf_hub_id="laion/toy", hf_hub_filename="open_clip_pytorch_model.bin") for n in NAMES},
    **{f"{n}.timm": _cfg(hf_hub_id="timm/") for n in NAMES},
})
register_patch_size_module(__name__)
