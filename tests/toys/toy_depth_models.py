"""Toy ViT-like timm models for the depth families (discovered pools, head and constructor
kwargs, in_chans, entry-point kwargs, reset_classifier across pools), registered only by
the harness's own tests (importing this module registers them; it also works as a pytest
plugin: ``-p tests.toys.toy_depth_models``).

``toy_depth_ok`` is correct; ``toy_depth_<bug>`` plants ``<bug>``. Every capability is
discovered from the constructor below (its literals, its signature), as for timm's models.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, get_act_layer
from timm.models import build_model_with_cfg
from torch import nn

from tests.toys.registry import register_toys, toy_cfg

MODEL_BUGS = (
    "ok",
    "pool_substituted",      # global_pool='max' silently builds 'avg'
    "pool_crash",            # the constructor accepts 'avgmax', then crashes building it (a broken case)
    "reset_ignores_pool",    # reset_classifier(n, pool) keeps the old pool
    "reset_headless_avg",    # after num_classes=0 construction, reset_classifier(n) switches to 'avg'
    "ls_ignored",            # timm 1.0.21: LayerScale gamma is ones whatever init_values says
    "drop_in_eval",          # head dropout stays on in eval mode
    "drop_unwired",          # drop_path_rate is accepted and never applied
    "lost_class_token",      # timm 1.0.25: pos_embed='none' drops the class / register tokens
    "act_ignored",           # act_layer is accepted, GELU is built
)
LOAD_BUGS = (
    "in_chans_first_channel",  # the checkpoint filter adapts the first conv from channel 0 only
    "entry_doubles",           # the entry point doubles a user's embed_dim
)
POOLS = ("", "avg", "avgmax", "max", "token", "map")


class ToyPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch_size: int, img_size):
        super().__init__()
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (h // patch_size, w // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ToyLayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float, ignore: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim) if ignore else init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ToyAttentionPool(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = (x @ self.latent.transpose(1, 2)).softmax(dim=1)
        return self.proj((attn * x).sum(1))


class ToyViT(nn.Module):
    def __init__(self, num_classes: int = 1000, global_pool: str = "token", in_chans: int = 3, img_size: int = 32,
                 patch_size: int = 8, embed_dim: int = 16, class_token: bool = True, reg_tokens: int = 0,
                 no_embed_class: bool = False, pos_embed: str = "learn", init_values: float | None = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, act_layer: str = "gelu", bug: str = "ok"):
        super().__init__()
        assert global_pool in ("", "avg", "avgmax", "max", "token", "map")
        assert class_token or global_pool != "token", "a token pool needs a class token"
        assert pos_embed in ("", "none", "learn")
        if bug == "pool_crash" and global_pool == "avgmax":
            raise RuntimeError("planted: the avgmax head cannot be built")
        self.bug = bug
        self.num_classes = num_classes
        self.built_headless = num_classes == 0
        self.global_pool = "avg" if bug == "pool_substituted" and global_pool == "max" else global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_reg_tokens = reg_tokens
        self.num_prefix_tokens = int(class_token) + reg_tokens
        self.no_embed_class = no_embed_class
        self.drop_rate = drop_rate
        self.patch_embed = ToyPatchEmbed(in_chans, embed_dim, patch_size, img_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, embed_dim)) if reg_tokens else None
        length = self.patch_embed.num_patches + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = None if pos_embed in ("", "none") else nn.Parameter(torch.randn(1, length, embed_dim) * .02)
        act = nn.GELU if bug == "act_ignored" else get_act_layer(act_layer)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, 2 * embed_dim), act(), nn.Linear(2 * embed_dim, embed_dim))
        self.ls = (ToyLayerScale(embed_dim, init_values, bug == "ls_ignored") if init_values is not None
                   else nn.Identity())
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 and bug != "drop_unwired" else nn.Identity()
        self.norm = nn.LayerNorm(embed_dim)
        self.attn_pool = ToyAttentionPool(embed_dim) if global_pool == "map" else None
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.pos_embed is None:
            return x if self.bug == "lost_class_token" else torch.cat(prefix + [x], dim=1)
        if self.no_embed_class:
            return torch.cat(prefix + [x + self.pos_embed], dim=1)
        return torch.cat(prefix + [x], dim=1) + self.pos_embed

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed(self.patch_embed(x))
        x = x + self.drop_path(self.ls(self.mlp(x)))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        tokens = x[:, self.num_prefix_tokens:]
        if self.attn_pool is not None:
            x = self.attn_pool(x)
        elif self.global_pool == "avg":
            x = tokens.mean(1)
        elif self.global_pool == "max":
            x = tokens.amax(1)
        elif self.global_pool == "avgmax":
            x = 0.5 * (tokens.mean(1) + tokens.amax(1))
        elif self.global_pool == "token":
            x = x[:, 0]
        x = F.dropout(x, self.drop_rate, training=True if self.bug == "drop_in_eval" else self.training)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is None and self.bug == "reset_headless_avg" and self.built_headless:
            global_pool = "avg"
        if global_pool is not None and self.bug != "reset_ignores_pool":
            assert global_pool in POOLS
            if global_pool == "map" and self.attn_pool is None:
                assert False, "Cannot currently add attention pooling in reset_classifier()."
            if global_pool != "map" and self.attn_pool is not None:
                self.attn_pool = None
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()


NAMES = [f"toy_depth_{b}" for b in MODEL_BUGS + LOAD_BUGS]


def _filter(bug: str):
    def checkpoint_filter_fn(state_dict, model):
        state_dict = dict(state_dict)
        w = state_dict["patch_embed.proj.weight"]
        chans = model.patch_embed.proj.in_channels
        if bug == "in_chans_first_channel" and w.shape[1] != chans:
            state_dict["patch_embed.proj.weight"] = w[:, :1].repeat(1, chans, 1, 1)
        return state_dict
    return checkpoint_filter_fn


def _builder(name: str, bug: str):
    def build(pretrained: bool, **kwargs):
        embed_dim = kwargs.pop("embed_dim", None)
        embed_dim = 16 if embed_dim is None else embed_dim * (2 if bug == "entry_doubles" else 1)
        model_bug = bug if bug in MODEL_BUGS else "ok"
        return build_model_with_cfg(ToyViT, name, pretrained, pretrained_filter_fn=_filter(bug), bug=model_bug,
                                    **dict(dict(embed_dim=embed_dim, patch_size=8), **kwargs))
    return build


CFG = dict(first_conv="patch_embed.proj", classifier="head", fixed_input_size=True)
register_toys(globals(), {name: _builder(name, name[len("toy_depth_"):]) for name in NAMES},
              {f"{name}.harness": toy_cfg(**CFG) for name in NAMES})
