"""Toy timm models, registered only by the harness's own tests, each reproducing one
kind of bug the checks must catch. Importing this module registers them (it also works
as a pytest plugin: ``-p tests.toys.toy_models``), and registers a 'toy' model family so the
generic suites exercise a head kwarg and pool types on them.

Bugs are selected by name: ``toy_ok`` is correct; ``toy_<bug>`` plants ``<bug>``.
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg
from torch import nn

from harness.registry.model_families import ModelFamily, register_family
from tests.toys.registry import register_toys

MODEL_BUGS = (
    "ok",
    "drop_attn_pool",        # ViT 1.0.3-1.0.10: compared against 'map ', dropped the attention pool
    "pool_reset_to_avg",     # reset_classifier(N) silently resets the pool type
    "reinit_prelogits",      # reset_classifier re-creates the pre-logits norm
    "stale_num_classes",     # reset_classifier forgets to update num_classes
    "keep_classifier",       # reset_classifier(0) keeps the old classifier
    "nan_output",            # forward produces NaN
    "pooled_unpooled",       # global_pool='' still pools
    "wrong_features",        # num_classes=0 returns a projection, not the features
    "ignores_num_classes",   # constructor ignores num_classes
    "lossy_state_dict",      # a tensor the forward uses is a random non-persistent buffer: lost by a state_dict
    "zeroes_old_head",       # not a bug: reset_classifier writes the old head's bias in place before replacing it
    "writes_body",           # reset_classifier writes a backbone weight in place
)
LOAD_BUGS = (
    "strict_head",           # HRNet 0.9.16: head='' drops modules, yet loads strictly
    "filter_drops_key",      # filter drops a backbone key and the load is non-strict
    "filter_scales",         # filter changes a backbone tensor's values
)


class AttnPool(nn.Module):
    """Stand-in for timm's AttentionPoolLatent (the name is what the harness looks for)."""

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        tokens = x.flatten(2).transpose(1, 2)
        attn = (tokens @ self.query.t()).softmax(dim=1)
        return self.proj((attn * tokens).sum(1))


class ToyNet(nn.Module):
    def __init__(self, num_classes: int = 1000, global_pool: str = "avg", head: str = "classification",
                 in_chans: int = 3, bug: str = "ok", **kwargs):
        super().__init__()
        self.bug = bug
        self.num_classes = 1000 if bug == "ignores_num_classes" else num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = 16
        self.stem = nn.Conv2d(in_chans, 8, 3, 2, 1)
        self.bn = nn.BatchNorm2d(8)
        self.stage = nn.Conv2d(8, 16, 3, 1, 1)
        self.head_extra = nn.Conv2d(16, 16, 1) if head == "classification" else None
        self.attn_pool = AttnPool(16) if global_pool == "map" else None
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, self.num_classes) if self.num_classes > 0 else nn.Identity()
        self.proj = nn.Linear(16, 10)
        if bug == "lossy_state_dict":
            self.register_buffer("offset", torch.randn(1, 16, 1, 1), persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage(torch.relu(self.bn(self.stem(x))))
        if self.head_extra is not None:
            x = self.head_extra(x)
        if self.bug == "nan_output":
            x = x * torch.tensor(float("nan"))
        if self.bug == "lossy_state_dict":
            x = x + self.offset
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pool = self.global_pool
        if pool == "map":
            x = self.attn_pool(x)
        elif pool == "avg" or (pool == "" and self.bug == "pooled_unpooled"):
            x = x.mean((2, 3))
        elif pool == "max":
            x = x.amax((2, 3))
        elif pool == "":
            return x.permute(0, 2, 3, 1)  # unpooled, channels last
        x = self.norm(x)
        if self.bug == "wrong_features" and self.num_classes == 0:
            x = self.proj(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if self.bug != "stale_num_classes":
            self.num_classes = num_classes
        if global_pool is None and self.bug == "pool_reset_to_avg":
            global_pool = "avg"
        if global_pool is not None:
            if global_pool == "map" and self.attn_pool is None:
                raise AssertionError("cannot add an attention pool in reset_classifier()")
            removes = global_pool != ("map " if self.bug == "drop_attn_pool" else "map")
            if removes and self.attn_pool is not None:
                self.attn_pool = None
            self.global_pool = global_pool
        if self.bug == "reinit_prelogits":
            self.norm = nn.LayerNorm(16)
        if num_classes == 0 and self.bug == "keep_classifier":
            return
        with torch.no_grad():
            if self.bug == "zeroes_old_head" and isinstance(self.head, nn.Linear):
                self.head.bias.zero_()
            if self.bug == "writes_body":
                self.stage.weight.mul_(1.5)
        self.head = nn.Linear(16, num_classes) if num_classes > 0 else nn.Identity()


NAMES = [f"toy_{b}" for b in MODEL_BUGS + LOAD_BUGS]


def _filter(bug: str):
    def checkpoint_filter_fn(state_dict, model):
        state_dict = dict(state_dict)
        if bug == "filter_drops_key":
            state_dict.pop("stage.weight")
        if bug == "filter_scales":
            state_dict["stem.weight"] = state_dict["stem.weight"] * 1.001
        return state_dict
    return checkpoint_filter_fn


def _builder(name: str, bug: str):
    def build(pretrained: bool, **kwargs):
        head = kwargs.get("head", "classification")
        fixed_strict = head == "classification" and bug != "filter_drops_key"
        # strict_head: strict by default whatever the head (HRNet 0.9.16 minus its kwarg collision)
        strict = kwargs.pop("pretrained_strict", True if bug == "strict_head" else fixed_strict)
        model_bug = bug if bug in MODEL_BUGS else "ok"
        return build_model_with_cfg(ToyNet, name, pretrained, pretrained_strict=strict,
                                    pretrained_filter_fn=_filter(bug), bug=model_bug, **kwargs)
    return build


register_toys(globals(), {name: _builder(name, name[len("toy_"):]) for name in NAMES})

TOY_FAMILY = ModelFamily(
    "toy", modules=(__name__.rsplit(".", 1)[-1],), head_kwargs={"head": ("",)}, pool_types=("avg", "max"),
    reset_configs={"global_pool_map": {"global_pool": "map"}}, loads_pretrained=("head",))
register_family(TOY_FAMILY)
