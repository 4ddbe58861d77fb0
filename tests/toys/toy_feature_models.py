"""Toy feature-extraction models, registered only by the harness's own tests, each planting
one bug of the kinds timm has shipped in feature_info, out_indices handling,
forward_intermediates and the features wrappers. Importing this module registers them (it
also works as a pytest plugin: ``-p tests.toys.toy_feature_models``).

``toy_feat_<bug>`` plants ``<bug>``; ``toy_feat_ok`` (FeatureListNet, the default wrapper of
most CNNs), ``toy_feat_getter_ok`` (FeatureGetterNet, the default of ViT-like models) and
``toy_feat_custom_ok`` (a model-specific features class, like EfficientNetFeatures) are
correct. The net: a stride-2 stem, then stages (stride 2 for the first three, 1 after),
a final norm and a linear head; feature levels are the stem and each stage.
"""
from __future__ import annotations

import torch
from timm.models import FeatureInfo, build_model_with_cfg
from timm.models._features import feature_take_indices
from torch import nn

from tests.toys.heads import PooledLinearHead
from tests.toys.registry import register_toys, toy_cfg

WIDTHS = (8, 12, 16, 20, 20, 20, 20, 20, 20, 20, 20, 20)

LIST_BUGS = (
    "ok",
    "reduction",          # timm 1.0.12 davit/efficientformer/metaformer: feature_info reduction wrong (fixed 1.0.13)
    "channels",           # feature_info num_chs of one level wrong
    "final_no_norm",      # forward_intermediates' final output skips the final norm
    "preact_taps",        # forward_intermediates taps a stage before its activation
    "stop_early_norm",    # timm 1.0.15 nextvit & co: stop_early applies the final norm to a truncated x (1.0.16)
    "stop_early_short",   # stop_early slices one stage too few: the last intermediate asked for is missing
    "nhwc_reshape",       # output_fmt='NHWC' reshapes instead of permuting
    "norm_twice",         # norm=True normalizes the final output a second time
    "pre_hook",           # a feature_info level declares hook_type='forward_pre': the hook wrapper taps the input
    "prune_extra",        # prune_intermediate_layers removes one stage too many
)
GETTER_BUGS = (
    "ok",
    "missing_module",     # hrnet: feature_info names a module the model does not have
    "wrong_module",       # feature_info names the stage's conv (same shape), not the stage
    "reversed",           # forward_intermediates returns the levels last-first
    "unchecked_indices",  # timm 1.0.7 FeatureGetterNet: an index past the last level silently dropped (1.0.8)
    "set_order",          # timm 1.0.7: prune_intermediate_layers returns list(set(indices)) (1.0.8)
)
CUSTOM_BUGS = (
    "ok",
    "negative",           # the model's own features class normalizes -1 as the next-to-last level
    "rename",             # the model's own features class nests its stages: the non-strict load skips them
    "unscriptable",       # the model's own features class keeps a Python set TorchScript cannot type
)


class ToyFeatNet(PooledLinearHead):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg", levels: int = 4,
                 bug: str = "ok", **kwargs):
        super().__init__()
        self.bug = bug
        self.num_classes = num_classes
        self.global_pool = global_pool
        widths = WIDTHS[:levels]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 2, 1), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, info, stride = [], [dict(num_chs=widths[0], reduction=2, module="stem.2")], 2
        for i in range(1, levels):
            s = 2 if i < 4 else 1
            stride *= s
            stages.append(nn.Sequential(nn.Conv2d(widths[i - 1], widths[i], 3, s, 1), nn.ReLU()))
            info.append(dict(num_chs=widths[i], reduction=stride, module=f"stages.{i - 1}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = widths[-1]
        self.norm = nn.BatchNorm2d(widths[-1])
        self.head = self.make_head(num_classes)
        if bug == "reduction":
            info = [dict(d, reduction=2) for d in info]
        elif bug == "channels":
            info[2] = dict(info[2], num_chs=info[2]["num_chs"] + 1)
        elif bug == "pre_hook":
            info[2] = dict(info[2], hook_type="forward_pre")
        elif bug == "missing_module":
            info[0] = dict(info[0], module="conv_stem")
        elif bug == "wrong_module":
            info[2] = dict(info[2], module=f"{info[2]['module']}.0")  # the stage's conv, before its ReLU
        self.feature_info = info

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))

    def _take(self, indices):
        if self.bug == "unchecked_indices":  # 1.0.7's feature_take_indices: no range check
            n = len(self.feature_info)
            take = [n + i if i < 0 else i for i in (range(n) if indices is None else indices)]
            return take, max(take)
        return feature_take_indices(len(self.feature_info), indices)

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False):
        assert output_fmt in ("NCHW", "NHWC"), "Output format must be one of NCHW or NHWC."
        take_indices, max_index = self._take(indices)
        last = len(self.feature_info) - 1
        out = []
        x = self.stem(x)
        if 0 in take_indices:
            out.append(x)
        stages = self.stages if not stop_early else self.stages[:max_index - (self.bug == "stop_early_short")]
        for i, stage in enumerate(stages, start=1):
            if self.bug == "preact_taps" and i in take_indices:
                pre = stage[0](x)
                x = stage[1](pre)
                out.append(pre)
                continue
            x = stage(x)
            if i in take_indices:
                out.append(self.norm(x) if norm and i == last else x)
        if self.bug == "reversed":
            out = out[::-1]
        if output_fmt == "NHWC":
            out = [t.reshape(t.shape[0], t.shape[2], t.shape[3], t.shape[1]) if self.bug == "nhwc_reshape"
                   else t.permute(0, 2, 3, 1) for t in out]
        if intermediates_only:
            return out
        if self.bug == "final_no_norm":
            return x, out
        if not stop_early or max_index == last or self.bug == "stop_early_norm":
            x = self.norm(x)
            if norm and self.bug == "norm_twice":
                x = self.norm(x)
        return x, out

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True):
        take_indices, max_index = self._take(indices)
        keep = max(max_index - (self.bug == "prune_extra"), 0)
        self.stages = self.stages[:keep]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return list(set(take_indices)) if self.bug == "set_order" else take_indices


class ToyFeatNetFeatures(nn.Module):
    """A model-specific features class (as EfficientNetFeatures, MobileNetV3Features): built
    instead of the classifier when features_only=True; loads the classifier's checkpoint
    non-strictly (its head is gone)."""

    def __init__(self, in_chans: int = 3, out_indices=(0, 1, 2, 3), levels: int = 4, bug: str = "ok", **kwargs):
        super().__init__()
        net = ToyFeatNet(num_classes=0, in_chans=in_chans, levels=levels)
        self.stem = net.stem
        self.stages = net.stages
        self.bug = bug
        n = len(net.feature_info)
        feature_take_indices(n, out_indices)  # an index out of range raises
        shift = 1 if bug == "negative" else 0
        take = [n - shift + i if i < 0 else i for i in out_indices]
        self._take = set(take) if bug == "unscriptable" else take
        self.feature_info = FeatureInfo(net.feature_info, out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        take = self._take
        out = []
        x = self.stem(x)
        if 0 in take:
            out.append(x)
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if i in take:
                out.append(x)
        return out


class ToyFeatNetFeaturesRenamed(ToyFeatNetFeatures):
    """The 'rename' bug: the stages nested one level deeper (stages.0.<i>.*), so the
    classifier checkpoint's stages.<i>.* keys do not reach them and they keep their init."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stages = nn.Sequential(self.stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = self.stem(x)
        if 0 in self._take:
            out.append(x)
        for i, stage in enumerate(self.stages[0], start=1):
            x = stage(x)
            if i in self._take:
                out.append(x)
        return out


def _build(name: str, bug: str, getter: bool = False, custom: bool = False, levels: int = 4):
    def builder(pretrained: bool, **kwargs):
        kwargs.setdefault("levels", levels)
        if custom and "feature_cls" not in kwargs and kwargs.pop("features_only", False):
            kwargs.pop("num_classes", None)
            cls = ToyFeatNetFeaturesRenamed if bug == "rename" else ToyFeatNetFeatures
            return build_model_with_cfg(cls, name, pretrained, bug=bug, pretrained_strict=False,
                                        feature_cfg=None, **kwargs)
        feature_cfg = dict(out_indices=tuple(range(levels)), flatten_sequential=True)
        if getter:
            feature_cfg = dict(out_indices=tuple(range(levels)), feature_cls="getter")
        return build_model_with_cfg(ToyFeatNet, name, pretrained, bug=bug, feature_cfg=feature_cfg, **kwargs)
    return builder


BUILDERS = {f"toy_feat_{b}": _build(f"toy_feat_{b}", b) for b in LIST_BUGS}
BUILDERS.update({f"toy_feat_getter_{b}": _build(f"toy_feat_getter_{b}", b, getter=True,
                                                levels=12 if b == "set_order" else 4) for b in GETTER_BUGS})
BUILDERS.update({f"toy_feat_custom_{b}": _build(f"toy_feat_custom_{b}", b, custom=True) for b in CUSTOM_BUGS})
NAMES = register_toys(globals(), BUILDERS,
                      {f"{name}.harness": toy_cfg(input_size=(3, 64, 64), pool_size=(4, 4), first_conv="stem.0")
                       for name in BUILDERS})
