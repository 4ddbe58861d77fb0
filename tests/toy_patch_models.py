"""Tiny CLIP-style ViTs registered only by the harness's own tests, each with a checkpoint
filter that plants one per-family bug the patch_size check must catch. Importing this
module registers them (also as a pytest plugin: ``-p tests.toy_patch_models``).

Each model has two pretrained tags whose configs select two checkpoint families through
the real detection rules: ``.laion`` (an OpenCLIP hub file) and ``.timm`` (timm native).
"""
from __future__ import annotations

import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models import vision_transformer as vit

from harness import patch_size

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
    return dict(url="", num_classes=16, input_size=(3, 32, 32), pool_size=None, crop_pct=1.0,
                mean=(0.5,) * 3, std=(0.5,) * 3, first_conv="patch_embed.proj", classifier="head",
                fixed_input_size=True, **kwargs)


NAMES = [f"toy_vit_{b}" for b in BUGS]
default_cfgs = generate_default_cfgs({
    **{f"{n}.laion": _cfg(hf_hub_id="laion/toy", hf_hub_filename="open_clip_pytorch_model.bin") for n in NAMES},
    **{f"{n}.timm": _cfg(hf_hub_id="timm/") for n in NAMES},
})


def _entrypoint(name: str, bug: str):
    def entrypoint(pretrained: bool = False, **kwargs):
        return build_model_with_cfg(vit.VisionTransformer, name, pretrained, pretrained_filter_fn=_filter(bug),
                                    **{**ARGS, **kwargs})
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    return entrypoint


for _name in NAMES:
    globals()[_name] = register_model(_entrypoint(_name, _name[len("toy_vit_"):]))

if __name__ not in patch_size.PATCH_MODULES:
    patch_size.PATCH_MODULES = patch_size.PATCH_MODULES + (__name__,)
