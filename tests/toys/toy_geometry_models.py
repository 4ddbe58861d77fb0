"""Toy models for the geometry family, registered only by the harness's own tests: tiny
timm VisionTransformers (timm's own class, loader and patch embedding, 32x32 input, patch 8)
and tiny any-size CNNs, each planting one input-size bug of the kinds timm has shipped.
Importing this module registers them (also a pytest plugin: ``-p tests.toys.toy_geometry_models``).

``toy_geom_ok`` and ``toy_geom_cnn_ok`` are correct; ``toy_geom_<bug>`` plants ``<bug>``.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, resample_abs_pos_embed
from timm.models import build_model_with_cfg
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys, toy_cfg

VIT_BUGS = (
    "ok",
    "square_resample",  # timm <= 1.0.11 ViT/DeiT/EVA: the dynamic resample assumes a square old grid (fixed 1.0.12)
    "dynamic_swap",     # the dynamic resample targets (W, H)
    "grid_swap",        # the patch grid of img_size=(H, W) is computed as (W/p, H/p): H and W swapped
    "bilinear_load",    # the checkpoint filter resamples bilinear, not resample_abs_pos_embed's bicubic
    "set_input_swap",   # set_input_size resamples pos_embed to the transposed grid
    "pad_topleft",      # dynamic_img_pad pads top/left instead of right/bottom
)
CNN_BUGS = (
    "ok",
    "transposed",       # forward_features reshapes its map to (W, H)
)
VIT_ARGS = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)


class SwappedGridEmbed(PatchEmbed):
    """PatchEmbed whose grid for a non-square img_size is transposed (the 'grid_swap' bug)."""

    def _init_img_size(self, img_size):
        img_size, grid_size, num_patches = super()._init_img_size(img_size)
        return img_size, (grid_size[1], grid_size[0]) if grid_size else grid_size, num_patches


class TopLeftPadEmbed(PatchEmbed):
    """PatchEmbed that pads a size that is not a patch multiple on the top and left."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_img_pad:
            ph = (self.patch_size[0] - x.shape[-2] % self.patch_size[0]) % self.patch_size[0]
            pw = (self.patch_size[1] - x.shape[-1] % self.patch_size[1]) % self.patch_size[1]
            x = F.pad(x, (pw, 0, ph, 0))
            saved, self.dynamic_img_pad = self.dynamic_img_pad, False
            try:
                return super().forward(x)
            finally:
                self.dynamic_img_pad = saved
        return super().forward(x)


class ToyGeomViT(VisionTransformer):
    def __init__(self, bug: str = "ok", **kwargs):
        embed = {"grid_swap": SwappedGridEmbed, "pad_topleft": TopLeftPadEmbed}.get(bug, PatchEmbed)
        super().__init__(embed_layer=embed, **kwargs)
        self.bug = bug

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dynamic_img_size or self.bug not in ("square_resample", "dynamic_swap"):
            return super()._pos_embed(x)
        B, H, W, C = x.shape
        if self.bug == "square_resample":  # timm 1.0.11: no old_size, so a square old grid is assumed
            pos = resample_abs_pos_embed(self.pos_embed, (H, W), num_prefix_tokens=self.num_prefix_tokens)
        else:
            pos = resample_abs_pos_embed(self.pos_embed, (W, H), old_size=self.patch_embed.grid_size,
                                         num_prefix_tokens=self.num_prefix_tokens)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x.view(B, -1, C)], dim=1)
        return self.pos_drop(x + pos)

    def set_input_size(self, img_size=None, patch_size=None) -> None:
        if self.bug != "set_input_swap":
            return super().set_input_size(img_size=img_size, patch_size=patch_size)
        old = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size=img_size, patch_size=patch_size)
        new = self.patch_embed.grid_size
        self.pos_embed = nn.Parameter(resample_abs_pos_embed(self.pos_embed, new_size=(new[1], new[0]), old_size=old,
                                                             num_prefix_tokens=self.num_prefix_tokens))


class ToyGeomCNN(PooledLinearHead):
    """Any input size: convs and a global pool; the map of an (H, W) input is (H/4, W/4)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, bug: str = "ok", global_pool: str = "avg",
                 **kwargs):
        super().__init__()
        self.bug = bug
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = 16
        self.stem = nn.Conv2d(in_chans, 8, 3, 2, 1)
        self.stage = nn.Conv2d(8, 16, 3, 2, 1)
        self.head = self.make_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage(torch.relu(self.stem(x)))
        if self.bug == "transposed":
            b, c, h, w = x.shape
            x = x.flatten(2).reshape(b, c, w, h)
        return x



def _vit(name: str, bug: str):
    filter_fn = (partial(checkpoint_filter_fn, interpolation="bilinear", antialias=False) if bug == "bilinear_load"
                 else checkpoint_filter_fn)
    return lambda pretrained, **kwargs: build_model_with_cfg(
        ToyGeomViT, name, pretrained, bug=bug, pretrained_filter_fn=filter_fn,
        feature_cfg=dict(out_indices=(0,), feature_cls="getter"), **dict(VIT_ARGS, **kwargs))


def _cnn(name: str, bug: str):
    return lambda pretrained, **kwargs: build_model_with_cfg(ToyGeomCNN, name, pretrained, bug=bug, **kwargs)


VIT_NAMES = register_toys(globals(), {f"toy_geom_{b}": _vit(f"toy_geom_{b}", b) for b in VIT_BUGS},
                          {f"toy_geom_{b}.harness": toy_cfg(fixed_input_size=True, first_conv="patch_embed.proj")
                           for b in VIT_BUGS})
CNN_NAMES = register_toys(globals(), {f"toy_geom_cnn_{b}": _cnn(f"toy_geom_cnn_{b}", b) for b in CNN_BUGS})
