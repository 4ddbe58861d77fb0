"""The curated smoke set (``--models smoke``, the default) and, within it, the subsets
that the costly check families run."""
from __future__ import annotations

import fnmatch

# Small, fast members of the families behind timm's historic regressions, covering every
# check family: ViT (incl. an attention pool, CLIP), HRNet heads, NextViT reparam,
# ConvNormAct users (cspnet, dpn, regnet), reparameterizable CNNs, plain convnets, hybrids.
SMOKE_MODELS: tuple[str, ...] = (
    "vit_tiny_patch16_224",            # ViT; reset configs include global_pool='map'
    "vit_so150m_patch16_reg4_map_256",  # ViT with attention pool by default (structural)
    "vit_base_patch16_clip_224",       # CLIP ViT (OpenAI/OpenCLIP checkpoint families)
    "deit_tiny_distilled_patch16_224",  # two classifiers (head, head_dist)
    "hrnet_w18_small",                 # model-specific head kwarg: head='' / 'incre'
    "nextvit_small",                   # reparameterize, hybrid conv/attention
    "cspresnet50",                     # ConvNormAct users (pickle compat)
    "dpn48b",
    "regnetx_002",
    "repvgg_a0",                       # reparameterizable CNN
    "fastvit_t8",                      # reparameterizable hybrid
    "resnet18",                        # plain convnet
    "convnext_atto",                   # convnet with a norm+MLP head
    "mobilenetv3_small_050",           # efficientnet builder, head_hidden_size != num_features
    "levit_128s",                      # hybrid conv/attention, distilled head
)


def _models(*names: str) -> tuple[str, ...]:
    """Patterns selecting every case of the named models (per-model ids and '<model>-...')."""
    return tuple(p for n in names for p in (n, f"{n}-*"))


# Within the smoke selection, the check families whose every case is costly (an ONNX
# export through dynamo takes ~40 s a model on 2 cores; patch_size builds a ViT-B per tag
# and geometry; features builds a dozen features models per model, ~30 s a model on 2
# shared cores, 200 s for vit_base_patch16_clip_224) run on a curated subset, so
# `nox -s compat` stays a quick gate. Keys are check families, values fnmatch patterns over
# the test's parameter id; a family not listed runs every smoke model.
# `--models 'pattern,...'` or `all` runs every case.
# The discovered depth cases (pools, in_chans, head / constructor kwargs, reset configs per
# pool) multiply the create / pretrained / reset_classifier cases ~4x; under smoke a subset
# runs that still covers each kind once per model: the first-class pools (max, catavgmax,
# the ViT avg and the attention pool), both in_chans, every head kwarg, the entry-kwargs
# round trip, and the constructor kwargs behind timm's historic regressions (init values,
# token options, drop path, act choice). The fast* / avgmax pools, the other drop rates,
# norm choices and the reset configs of the other pools run with any other --models value.
# (No smoke model has a discovered fc_norm / pre_logits head kwarg: patterns for them would
# select nothing, which suites/test_smoke_set.py fails.)
_DEPTH_VARIANTS = ("*-default", "*-num_classes_0", "*-num_classes_7", "*-global_pool_", "*-head*",
                   "*-global_pool_max", "*-global_pool_catavgmax", "*-global_pool_avg",
                   "*-global_pool_map", "*-in_chans_*")
_DEPTH_KWARGS = ("*-entry_kwargs", "*-kwarg-init_values_*", "*-kwarg-ls_init_value_*",
                 "*-kwarg-layer_scale_init_value_*", "*-kwarg-pos_embed_none", "*-kwarg-class_token_*",
                 "*-kwarg-reg_tokens_*", "*-kwarg-drop_path_rate_*", "*-kwarg-act_layer_*")

SMOKE_SCOPES: dict[str, tuple[str, ...]] = {
    "create": _DEPTH_VARIANTS + _DEPTH_KWARGS,
    "pretrained": _DEPTH_VARIANTS,
    "reset_classifier": ("*-default", "*-num_classes_0", "*-global_pool_map", "*-num_classes_0-global_pool_map",
                         "*-global_pool_catavgmax"),
    "onnx": ("*-torchscript", "*-torchscript-reparam", "resnet18-dynamo", "mobilenetv3_small_050-dynamo",
             "convnext_atto-dynamo", "vit_tiny_patch16_224-dynamo", "repvgg_a0-dynamo*"),
    "patch_size": ("vit_tiny_patch16_224.augreg_in21k-*", "vit_base_patch16_clip_224.openai-*",
                   "vit_base_patch16_clip_224.laion2b-*"),
    # one model per features wrapper: FeatureListNet (resnet18), a model-specific class
    # (mobilenetv3), FeatureGetterNet on a ViT and a hybrid (vit_tiny, levit), HRNet's own class
    # and its known feature_info issue, and the structural path (vit_so150m, over --max-params)
    "features": _models("resnet18", "mobilenetv3_small_050", "vit_tiny_patch16_224", "levit_128s",
                        "hrnet_w18_small", "vit_so150m_patch16_reg4_map_256"),
    # every ViT knob (vit_tiny), a distilled ViT (deit), the structural path (vit_so150m), an
    # img_size hybrid (levit) and any-size CNNs (resnet18, convnext_atto)
    "geometry": _models("vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "vit_so150m_patch16_reg4_map_256",
                        "levit_128s", "resnet18", "convnext_atto"),
}


def in_smoke_scope(check: str, param_id: str) -> bool:
    """Whether a smoke run keeps this test (see SMOKE_SCOPES)."""
    patterns = SMOKE_SCOPES.get(check)
    return patterns is None or any(fnmatch.fnmatchcase(param_id, p) for p in patterns)
