"""The known-issues registry: real, understood failures, declared as data.

Each entry is a model pattern x check family x timm version range x reason, applied as a
strict xfail so a known issue that stops failing fails the run (and the entry gets
removed). ``--ignore-known-issues`` runs as if this table were empty.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class KnownIssue:
    models: str            # comma-separated fnmatch patterns over model names
    check: str             # check family marker, e.g. "pretrained"
    timm: str              # PEP 440 specifier set, e.g. "<1.0.11" ("" = every release)
    reason: str
    variant: str = "*"     # comma-separated fnmatch patterns over the test's full parameter id
    match: str = ""        # regex the failure message must contain; any other failure still fails
    test: str = "*"        # fnmatch over the test function's name (e.g. test_compat_pickle)
    historic: bool = False  # the models are gone from the newest timm (kept for older releases)

    def applies(self, model: str, check: str, param_id: str, timm_version: str, test_name: str = "") -> bool:
        if check != self.check:
            return False
        if not any(fnmatch.fnmatchcase(model, p.strip()) for p in self.models.split(",")):
            return False
        if not any(fnmatch.fnmatchcase(param_id, v.strip()) for v in self.variant.split(",")):
            return False
        if test_name and not fnmatch.fnmatchcase(test_name, self.test):
            return False
        return SpecifierSet(self.timm).contains(Version(timm_version), prereleases=True)


_STRICT_COLLISION = (
    "_create_{fn}() passes pretrained_strict to build_model_with_cfg itself, so a user's "
    "pretrained_strict=False collides: TypeError 'got multiple values for keyword "
    "argument pretrained_strict'"
)

_HRNET_INCRE = ("HighResolutionNet(head='incre') builds no downsamp_modules but forward_features "
                "uses them: AttributeError 'HighResolutionNet' object has no attribute "
                "'downsamp_modules' (seen 0.9.16 through 1.0.30; fixed in 1.0.31)")

_STALE_NUM_CLASSES = ("reset_classifier() delegates to head.reset() without updating model.num_classes, "
                      "which stays 1000 after reset_classifier(0) (seen through 1.0.14; fixed in 1.0.15)")

_FASTVIT_REPMIXER = (
    "RepMixer.reparameterize() returns early only if self.inference_mode, but never sets it; it "
    "deletes self.mixer, so a second reparameterize_model raises AttributeError 'RepMixer' object "
    "has no attribute 'mixer' (seen 0.9.16, 1.0.12, 1.0.31; same code in 1.0.3: not fixed)"
)

# Models whose default pretrained tag has custom_load=True (26 in 0.9.16 through 1.0.31; those
# up to the default --max-params: over it the check loads the in-memory state_dict route,
# which custom_load does not affect), and the custom_load tags of patch-embedding models
# (65 tags: Google augreg/sam .npz on the URL, timm-native safetensors on the hub).
_CUSTOM_LOAD_DEFAULT_MODELS = (
    "flexivit_base,flexivit_small,resnetv2_50x1_bit,resnetv2_101x1_bit,vit_base_patch16_384,vit_base_patch32_224,"
    "vit_base_patch32_384,vit_small_patch16_224,vit_small_patch16_384,vit_small_patch32_224,vit_small_patch32_384,"
    "vit_small_r26_s32_224,vit_small_r26_s32_384,vit_tiny_patch16_224,vit_tiny_patch16_384,vit_tiny_r_s16_p8_224,"
    "vit_tiny_r_s16_p8_384")
_CUSTOM_LOAD_TAGS = "*.augreg_in21k-timm-*,*.augreg_in21k_ft_in1k-timm-*,*.augreg_in1k-timm-*,*.sam_in1k-timm-*," \
                    "flexivit_*-timm-*"
_CUSTOM_LOAD_FILE = (
    "load_pretrained reads a pretrained_cfg_overlay `file` with model.load_pretrained() (the Google .npz "
    "loader, np.load) whenever the tag's cfg has custom_load=True, although custom_load describes the tag's URL "
    "file: the hub file timm downloads by default for these tags is a timm-native safetensors, so "
    "create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=<that file>)) raises ValueError "
    "'This file contains pickled (object) data' from np.load (same code in 0.9.16, 1.0.12 and 1.0.30; fixed in "
    "1.0.31: resolve_pretrained_cfg sets custom_load=False when the overlay gives a file, url or hub id)"
)
_NPZ_LOADER_ERROR = r"raised ValueError: This file contains pickled \(object\) data"

# The MobileNetV3 class (timm.models.mobilenetv3: mobilenetv3, tf_mobilenetv3, mobilenetv4, lcnet, fbnetv3):
# a conv_head follows the pool, sized for the pooled width.
_MOBILENETV3 = "mobilenetv3_*,tf_mobilenetv3_*,mobilenetv4_*,lcnet_*,fbnetv3_*"
_MOBILENETV3_RESET = (
    "MobileNetV3.reset_classifier(num_classes, global_pool='avg') (mobilenetv3.py through 1.0.30): called "
    "without a pool it rebuilt the pool as 'avg', so a model built with global_pool='max' (or any other) silently "
    "switched to average pooling; and it accepted a pool of another width (catavgmax doubles it) although conv_head "
    "after the pool is sized for the built width, leaving a model whose forward raises RuntimeError (the limitation "
    "is issue #1561: 'requires reseting and reconfiguring that instead of just the final classifier'). 1.0.31 "
    "defaults global_pool=None (keeps the pool) and refuses a width change with AssertionError 'The head conv is "
    "sized for the pooled width, pooling can not change it.' Found by the discovered pools"
)

# Every model of timm.models.eva (65 in 1.0.31).
_EVA_MODELS = "eva02_*,eva_giant_*,vit_*rope*,vit_*dinov3*,vit_pe_*,vit_*_sapiens2,vit_*_lingbot"
_EVA_IS_CAUSAL = (
    "Eva.forward gained `attn_mask=None, is_causal=False` in 1.0.26 (commit 61a26c77, 'Improve attention mask "
    "handling for vision_transformer and eva'); the TorchScript-based exporter feeds a forward's unspecified "
    "defaults as traced inputs, so is_causal reaches F.scaled_dot_product_attention as tensor(False): TypeError "
    "'argument is_causal must be bool, not Tensor'. torch.onnx.export(model, (x,), dynamo=False) and timm's own "
    "timm.utils.onnx.onnx_export (its default exporter) fail for every Eva model (checked: eva02_tiny, "
    "vit_small_patch16_rope_224, vit_pe_core_tiny, vit_small_patch16_lingbot, vit_tiny_patch16_dinov3_qkvb on "
    "1.0.31; eva02_tiny exports on 1.0.25, fails on 1.0.26). The dynamo exporter is not affected"
)

_CONVIT_INFERENCE_BUFFER = (
    "ConViT's GPSA.rel_indices became a non-persistent buffer in 1.0.31 (before, a plain attribute), still "
    "recomputed in forward for each token count; timm.utils.onnx.onnx_export runs its warm-up forward under "
    "torch.inference_mode() (since 1.0.17), so the buffer it stores is an inference tensor and the TorchScript "
    "exporter's trace then raises RuntimeError 'Inference tensors cannot be saved for backward' at "
    "blocks.0.attn.pos_proj: onnx_export.py --model convit_tiny fails on 1.0.31. On 1.0.30 it exported, but the "
    "plain attribute was traced as a constant of the export's batch, so the graph failed at any other batch; the "
    "buffer fixed that for torch.onnx.export (the onnx family passes on 1.0.31). The dynamo exporter is not "
    "affected. Found by the zoo (shard 6)"
)

# Whole-module pickles (torch.save(model)) written by a baseline release, loaded by the candidate:
# unpickling restores the old __dict__ without running __init__, so an attribute that a newer
# forward reads unguarded is missing; a class that was renamed cannot be found at all. The
# variant selects the baseline releases (the id's suffix) that predate the attribute.
_PICKLE = "test_compat_pickle"
_BEFORE_1_0_7 = "*-0.*,*-1.0.[0-6]"
_BEFORE_1_0_28 = "*-0.*,*-1.0.[0-9],*-1.0.1[0-9],*-1.0.2[0-7]"
_BEFORE_1_0_31 = "*-0.*,*-1.0.[0-9],*-1.0.[12][0-9],*-1.0.30"

_COMPAT_PICKLE_ISSUES = (
    KnownIssue(
        "vit_*,deit_*", "compat", ">=1.0.28", test=_PICKLE, variant=_BEFORE_1_0_28,
        reason="timm.layers.Attention gained `gate` (gated attention, 1.0.28) and its forward reads "
               "self.gate unguarded: a ViT/DeiT pickled by an older release raises AttributeError "
               "'Attention' object has no attribute 'gate' (seen on 1.0.31 for 0.9.16 and 1.0.12 pickles)",
        match=r"'Attention' object has no attribute 'gate'"),
    KnownIssue(
        "mobilenetv3_*", "compat", ">=1.0.7", test=_PICKLE, variant=_BEFORE_1_0_7,
        reason="DepthwiseSeparableConv gained `conv_s2d` (space-to-depth stem option, 1.0.7) and its "
               "forward reads self.conv_s2d unguarded: an EfficientNet-builder model pickled by 0.9.x "
               "raises AttributeError 'DepthwiseSeparableConv' object has no attribute 'conv_s2d'",
        match=r"no attribute 'conv_s2d'"),
    KnownIssue(
        "fastvit_*", "compat", ">=1.0.12", test=_PICKLE, variant=_BEFORE_1_0_7,
        reason="fastvit ReparamLargeKernelConv gained `se` (1.0.7, for MobileCLIP) and its forward "
               "reads self.se unguarded: a FastViT pickled by 0.9.x raises AttributeError "
               "'ReparamLargeKernelConv' object has no attribute 'se' (on 1.0.7-1.0.11 the same pickle "
               "fails earlier, on ConvNormAct.aa: that historic regression stays a failure)",
        match=r"'ReparamLargeKernelConv' object has no attribute 'se'"),
    KnownIssue(
        "dpn*", "compat", ">=1.0.31,<1.0.32", test=_PICKLE, variant=_BEFORE_1_0_31,
        reason="timm 1.0.31 renamed dpn.CatBnAct to BnAct without an alias, so torch.load of a DPN "
               "pickled by any earlier release raises AttributeError: Can't get attribute 'CatBnAct' "
               "on <module 'timm.models.dpn'> (seen for 0.9.16 and 1.0.12 pickles; 1.0.30 still had it). "
               "Bounded to 1.0.31, the newest release checked: the break is that release's own, so on a "
               "newer release the failure shows again until someone re-checks and widens the range",
        match=r"Can't get attribute 'CatBnAct'"),
)

# The EfficientNet entry points that set a TF-ported BN epsilon (kwargs.setdefault('bn_eps', ...)):
# exactly these 35 names in 0.9.16, 1.0.28 and 1.0.31, found by building every model of
# timm.models.efficientnet, mobilenetv3 and hardcorenas with norm_layer=nn.BatchNorm2d.
_TF_BN_EPS_MODELS = "tf_efficientnet_*,tf_efficientnetv2_*,tf_mixnet_*,efficientnet_b[123]_pruned"
_TF_BN_EPS = (
    "The tf_* EfficientNet/MixNet entry points (and efficientnet_b1-b3_pruned) set kwargs.setdefault('bn_eps', "
    "1e-3), and the _gen_* functions consume it only when no norm_layer is given: `norm_layer=kwargs.pop("
    "'norm_layer', None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs))` short-circuits, bn_eps stays in "
    "kwargs and reaches EfficientNet.__init__. So create_model('tf_efficientnet_b0', norm_layer=...) raises "
    "TypeError \"EfficientNet.__init__() got an unexpected keyword argument 'bn_eps'\" where the non-tf models "
    "accept norm_layer (the entry-kwargs round trip passes the norm_layer the entry point built back; seen on "
    "0.9.16, 1.0.28 and 1.0.31: not fixed)"
)

# The models whose default pool puts the final norm after the pool (fc_norm) and whose
# global_pool='' build puts it before (norm): exactly these 49 in 1.0.31, found by comparing the
# state_dict keys of create_model(num_classes=0) and create_model(num_classes=0, global_pool='')
# on the meta device for every model of beit, eva, naflexvit, vision_transformer(_relpos); the
# same keys on 0.9.16 and 1.0.28 (checked: beit_base_patch16_224, eva02_tiny_patch14_224,
# vit_medium_patch16_reg4_gap_256). The other 27 models whose keys differ there lose only attn_pool.
_FC_NORM_MODELS = (
    "beit_base_patch16_224,beit_base_patch16_384,beit_large_patch16_224,beit_large_patch16_384,"
    "beit_large_patch16_512,beitv2_base_patch16_224,beitv2_large_patch16_224,eva02_base_patch14_224,"
    "eva02_base_patch14_448,eva02_large_patch14_224,eva02_large_patch14_448,eva02_small_patch14_224,"
    "eva02_small_patch14_336,eva02_tiny_patch14_224,eva02_tiny_patch14_336,eva_giant_patch14_224,"
    "eva_giant_patch14_336,eva_giant_patch14_560,vit_base_patch16_rope_reg1_gap_256,"
    "vit_betwixt_patch16_rope_reg4_gap_256,vit_medium_patch16_rope_reg1_gap_256,"
    "vit_mediumd_patch16_rope_reg1_gap_256,beit3_base_patch16_224,beit3_giant_patch14_224,"
    "beit3_giant_patch14_336,beit3_large_patch16_224,eva_large_patch14_196,eva_large_patch14_336,"
    "test_vit2,test_vit4,vit_base_patch16_reg4_gap_256,vit_base_patch16_rpn_224,"
    "vit_betwixt_patch16_reg1_gap_256,vit_betwixt_patch16_reg4_gap_256,vit_betwixt_patch16_reg4_gap_384,"
    "vit_dlittle_patch16_reg1_gap_256,vit_dpwee_patch16_reg1_gap_256,vit_dwee_patch16_reg1_gap_256,"
    "vit_little_patch16_reg1_gap_256,vit_little_patch16_reg4_gap_256,vit_medium_patch16_reg1_gap_256,"
    "vit_medium_patch16_reg4_gap_256,vit_mediumd_patch16_reg4_gap_256,vit_mediumd_patch16_reg4_gap_384,"
    "vit_pwee_patch16_reg1_gap_256,vit_so150m2_patch16_reg1_gap_256,vit_so150m2_patch16_reg1_gap_384,"
    "vit_so150m2_patch16_reg1_gap_448,vit_wee_patch16_reg1_gap_256")
_FC_NORM = (
    "Beit/Eva/ViT(global_pool='') build the final norm as 'norm' where the default (avg-pool) build and its "
    "checkpoint have 'fc_norm' (vision_transformer.py: use_fc_norm = global_pool in ('avg', 'avgmax', 'max'); "
    "eva.py: activate_fc_norm = global_pool == 'avg'; beit.py the same), and no checkpoint filter renames it. "
    "With a classifier change the load is non-strict, so the pretrained final norm is silently dropped and norm "
    "keeps its init values; where the load is strict (a tag with num_classes=0, e.g. eva02_*.mim_*) it raises "
    "'Missing key(s) norm.weight, norm.bias; Unexpected key(s) fc_norm.bias, fc_norm.weight'. reset_classifier "
    "keeps fc_norm (ViT records fc_norm in its model args), only the construction loses it (seen 0.9.16, "
    "1.0.28 and 1.0.31: not fixed)"
)
# exactly these two keys, in either form: any other tensor that did not load is another failure
_FC_NORM_MATCH = (r"\Abackbone tensors not loaded from the checkpoint \(2\):\n  norm\.weight: not in the checkpoint "
                  r"\(kept its init value\)\n  norm\.bias: not in the checkpoint \(kept its init value\)\Z"
                  r"|Missing key\(s\) in state_dict: \"norm\.weight\", \"norm\.bias\"\. \s*Unexpected key\(s\) in "
                  r"state_dict: \"fc_norm\.bias\", \"fc_norm\.weight\"\. ")

_DISTILLED = ("VisionTransformerDistilled.__init__ overwrites what the ViT base built: num_prefix_tokens = 2 and "
              "pos_embed = Parameter(num_patches + 2) unconditionally, so the base constructor's {what} (accepted "
              "through **kwargs) is ignored or breaks the forward (deit.py, unchanged 0.9.16 through 1.0.31)")

# Constructor kwargs a constructor accepts but does not honour (the create family's discovered
# constructor kwargs, harness.checks.constructor_kwargs).
_CONSTRUCTOR_KWARG_ISSUES = (
    KnownIssue("deit_*distilled*", "create", "", variant="*-kwarg-reg_tokens_*",
               reason=_DISTILLED.format(what="reg_tokens (num_prefix_tokens stays 2)"),
               match=r"num_prefix_tokens is 2, expected \d+ with reg_tokens"),
    KnownIssue("deit_*distilled*", "create", "", variant="*-kwarg-pos_embed_*",
               reason=_DISTILLED.format(what="pos_embed='none' / '' (a pos_embed parameter is built anyway)"),
               match=r"pos_embed is a parameter of shape"),
    KnownIssue("coat_*", "create", "", variant="*-kwarg-attn_drop_rate_*",
               reason="CoaT's FactorAttnConvRelPosEnc builds self.attn_drop = nn.Dropout(attn_drop) and never calls it "
                      "(its own comment: 'Note: attn_drop is actually not used.'; factorized attention forms no "
                      "attention matrix to drop): attn_drop_rate is accepted and has no effect (coat.py, the same in 0.9.16 and 1.0.31)",
               match=r"attn_drop_rate=0.25\): train-mode output equals the model built without attn_drop_rate"),
    KnownIssue("deit_*distilled*", "create", "", variant="*-kwarg-no_embed_class_*",
               reason=_DISTILLED.format(what="no_embed_class=True (the pos_embed keeps the prefix positions, the "
                                             "forward adds it to the patches alone: a shape mismatch)"),
               match=r"must match the size of tensor b"),
)

_HRNET_FEATURE_MODULES = (
    "HRNet's feature_info names modules the model does not have: 'stem' (its stem is conv1/bn1/act1/conv2/"
    "bn2/act2) and 'stage1'..'stage4' (the levels come from HighResolutionNetFeatures' incre modules), so "
    "no hook on them can return the levels and features_only=True, feature_cls='hook' raises KeyError: "
    "'stem', feature_cls='fx' ValueError: node: 'stem' is not present (hrnet.py feature_info is the same in "
    "0.9.16, 1.0.12 and 1.0.31: not fixed)"
)

_BLOCK_MODULES = (
    "feature_info names modules 'block.0'..'block.3', which the model does not have: its stages are "
    "`stages` (MViTv2) / `blocks` (Twins), so a hook or FX tap at feature_info's modules cannot be placed "
    "(the default FeatureGetterNet never looks them up). Written so when both gained feature_info in 1.0.3 "
    "(679daef7); mvitv2.py and twins.py unchanged in 1.0.31"
)

# The surface family's package-level tests ('timm-<baseline version>'): removals a release made
# without a deprecation mapping, found by diffing registry dumps of every release from 0.9.16 on.
_BEFORE_1_0_3 = "timm-0.*"
_SAM2_TAGS = "timm-1.0.9,timm-1.0.1[0-2]"  # the releases that had sam2_hiera_tiny.r224 / .r896

_SURFACE_ISSUES = (
    KnownIssue(
        "timm", "surface", ">=1.0.3", test="test_registry", variant=_BEFORE_1_0_3,
        reason="vit_medium_patch16_reg4_256 (0.9.16, no pretrained weights) was removed in 1.0.3 (commit 7b3b11b6, "
               "the GAP variants for the SigLIP/PaliGemma weights) with no register_model_deprecations entry, so "
               "create_model('vit_medium_patch16_reg4_256') raises RuntimeError 'Unknown model'",
        match=r"models removed without a deprecation mapping \(1\):\n  vit_medium_patch16_reg4_256 \(module "
              r"vision_transformer\)$"),
    KnownIssue(
        "timm", "surface", ">=1.0.13", test="test_registry", variant=_SAM2_TAGS,
        reason="sam2_hiera_tiny.r224 and .r896 (1.0.9-1.0.12) became sam2_hiera_tiny.fb_r896 / .fb_r896_2pt1 in "
               "1.0.13 (commit 790decc8) with no deprecation mapping: create_model('sam2_hiera_tiny.r224', "
               "pretrained=True) fails",
        match=r"pretrained tags removed without a deprecation mapping \(2\):\n  sam2_hiera_tiny.r224 \(.*\)\n  "
              r"sam2_hiera_tiny.r896 \(.*\)$"),
    KnownIssue(
        "timm", "surface", ">=1.0.12", test="test_public_api", variant=_BEFORE_1_0_3,
        reason="timm 1.0.3 removed timm.layers.SpaceToDepthModule (also re-exported by the deprecated "
               "timm.models.layers) and the timm.layers.activations_jit module (commit 2bfa5e5d, JIT activations "
               "removed), and 1.0.12 removed timm.optim.Nadam (commit a024ab31: torch.optim.NAdam, the timm "
               "implementation renamed NAdamLegacy), none with an alias: `from timm.optim import Nadam` raises",
        match=r"names removed \(4\):\n  timm.layers.SpaceToDepthModule\n  timm.layers.activations_jit "
              r"\(submodule\)\n  timm.models.layers.SpaceToDepthModule\n  timm.optim.Nadam$"),
    KnownIssue(
        "timm", "surface", ">=1.0.12", test="test_public_api", variant="timm-1.0.[3-9],timm-1.0.1[01]",
        reason="timm 1.0.12 removed timm.optim.Nadam (commit a024ab31: torch.optim.NAdam replaces it, the timm "
               "implementation renamed NAdamLegacy) without an alias",
        match=r"names removed \(1\):\n  timm.optim.Nadam$"),
)

# What torch's exporters cannot export (torch 2.14.1), found for every numeric model (at most the
# default --max-params) containing the layer named, by torch.onnx.export(dynamo=False) at the cfg's
# input size with a dynamic batch: each message below on exactly these models. They are torch's
# limitations, not timm's; an entry fails (strict xfail) once a torch release exports the model.
# Each covers the onnx family and timm's own helper (timm_utils, timm.utils.onnx.onnx_export).
_TORCHSCRIPT_EXPORT = "torch 2.14.1's TorchScript-based ONNX exporter (torch.onnx.export(dynamo=False), the default of "
_EXPORT_LIMITS = (
    ("eca_halonext26ts,halo2botnet50ts_256,halonet*,haloregnetz_b,lamhalobotnet50ts_256,sehalonet33ts", "*-torchscript",
     _TORCHSCRIPT_EXPORT + "timm.utils.onnx.onnx_export) has no symbolic for Unfold when the input size is not "
     "static (HaloAttn unfolds its padded keys/values per block): SymbolicValueError 'Unsupported: ONNX export of "
     "operator Unfold, input size not accessible' (the 8 models with timm.layers HaloAttn)",
     r"Unsupported: ONNX export of operator Unfold, input size not accessible"),
    ("efficientnet_cc_*,tf_efficientnet_cc_*", "*-torchscript",
     _TORCHSCRIPT_EXPORT + "timm.utils.onnx.onnx_export) cannot export a convolution whose kernel is computed "
     "(CondConv2d mixes its experts' kernels per sample): SymbolicValueError 'Unsupported: ONNX export of "
     "convolution for kernel of unknown shape' (the 6 CondConv models)",
     r"Unsupported: ONNX export of convolution for kernel of unknown shape"),
    ("efficientnet_cc_*,tf_efficientnet_cc_*", "*-dynamo",
     "torch 2.14.1's dynamo ONNX exporter cannot take CondConv2d's computed kernel as a conv attribute: TypeError "
     "'Unsupported attribute type: SymbolicTensor' at aten.conv2d (seen on tf_efficientnet_cc_b0_8e)",
     r"aten\.conv2d\.default: TypeError: Unsupported attribute type"),
    ("test_vit4,vit_base_patch16_xp_224,vit_dlittle_patch16_reg1_gap_256,vit_dpwee_patch16_reg1_gap_256,"
     "vit_dwee_patch16_reg1_gap_256", "*-torchscript",
     _TORCHSCRIPT_EXPORT + "timm.utils.onnx.onnx_export, opset 20) has no symbolic for aten::rms_norm, which "
     "timm.layers.RmsNorm calls (F.rms_norm); ONNX has RMSNormalization from opset 23 only: "
     "UnsupportedOperatorError (the numeric models with RmsNorm; RmsNorm2d / SimpleNorm2d export)",
     r"Exporting the operator 'aten::rms_norm' to ONNX opset version 20 is not supported"),
    ("volo_d1_*,volo_d2_*,volo_d3_*", "*-torchscript",
     _TORCHSCRIPT_EXPORT + "timm.utils.onnx.onnx_export) fails translating col2im (OutlookAttention's F.fold): its "
     "opset-18 symbolic reads the static size of output_size, which is None here: TypeError 'NoneType' object is "
     "not subscriptable (every numeric VOLO)",
     r"TypeError: 'NoneType' object is not subscriptable"),
)
_EXPORT_ISSUES = tuple(KnownIssue(models, check, "", variant=variant, reason=reason, match=match)
                       for models, variant, reason, match in _EXPORT_LIMITS for check in ("onnx", "timm_utils"))

_ACCELERATE_RAISED = r"create_model under accelerate\.init_empty_weights\(\) raised "

KNOWN_ISSUES: tuple[KnownIssue, ...] = _COMPAT_PICKLE_ISSUES + _EXPORT_ISSUES + _CONSTRUCTOR_KWARG_ISSUES + _SURFACE_ISSUES + (
    KnownIssue(_TF_BN_EPS_MODELS, "create", "", test="test_entry_kwargs", reason=_TF_BN_EPS,
               match=r"raised TypeError: EfficientNet.__init__\(\) got an unexpected keyword argument 'bn_eps'"),
    KnownIssue(
        "levit_384_s8,levit_conv_384_s8", "pretrained", "", variant="*-num_classes_[1-9]*",
        reason="levit_384_s8 / levit_conv_384_s8 build LevitDistilled (their entry points do not pass "
               "distilled=False, as levit_512_s8 and the other untrained LeViTs do) while their .untrained cfg names "
               "classifier='head.linear' only: load_pretrained with another num_classes drops head.linear from the "
               "checkpoint and keeps head_dist.linear (1000 classes), so the load raises a size mismatch for "
               "head_dist.linear even with pretrained_strict=False (found by comparing every LeViT's heads with its "
               "cfg's classifier: exactly these two in 0.9.16 and 1.0.31)",
        match=r"size mismatch for head_dist\.linear\.weight: copying a param with shape torch\.Size\(\[1000, \d+\]\)"),
    KnownIssue(
        "tresnet_*", "features", "",
        reason="TResNet's feature_info lists a level 0 at module '' (reduction 2; its own comment: '# Not with "
               "S2D?'), which no wrapper can tap: its feature_cfg defaults out_indices=(1, 2, 3, 4), and "
               "create_model('tresnet_m', features_only=True, out_indices=(0, 1, 2, 3, 4)) raises AssertionError "
               "\"Return layers ({''}) are not present in model\". Every features check builds the all-levels "
               "reference first, so the family fails as a whole (tresnet.py, the same in 0.9.16 and 1.0.31)",
        match=r"Return layers \(\{''\}\) are not present in model"),
    KnownIssue(
        "vit_dlittle_patch16_reg1_gap_256,vit_dpwee_patch16_reg1_gap_256,vit_dwee_patch16_reg1_gap_256",
        "meta_init", "", variant="*-device_dtype",
        reason="Differential attention builds its lambda parameters with dtype=torch.float32 hard-coded "
               "(layers/diff_attention.py DiffAttention and vision_transformer.py's parallel diff block: "
               "nn.Parameter(torch.empty(head_dim, dtype=torch.float32, device=device)), the dd dtype ignored), so "
               "create_model(dtype=torch.float64) leaves 56-64 float32 tensors (found by building every model "
               "with device='meta', dtype=torch.float64: exactly these three; the same code in 1.0.28 and 1.0.31)",
        match=r"create_model\(dtype=torch\.float64\): floating tensors not in float64 \(\d+\):\n  "
              r"blocks\.0\.(attn\.)?lambda_q1: torch\.float32"),
    KnownIssue(
        "swinv2_*,vit_*_rope_mixed_*", "meta_init", ">=1.0.25", variant="*-accelerate",
        reason="Swin V2 (and Swin V2 CR) window attention and RotaryEmbeddingMixed fill their non-persistent "
               "buffers in _init_buffers() from tables computed on a parameter's device (swin_transformer_v2.py: "
               "device=self.proj.weight.device), then copy_ them into the buffers. Under accelerate's "
               "init_empty_weights() the parameters are on meta and the buffers on the CPU, so the copy raises "
               "NotImplementedError 'Cannot copy out of meta tensor; no data!'. 1.0.23-1.0.24 skipped the init when "
               "the weight is meta (leaving the buffers uninitialized, timm #2661); the fix in 1.0.25 made it "
               "unconditional ('# TODO: skip init when on meta device when safe to do so') and broke these. "
               "Bisected: 0.9.16-1.0.22 build, 1.0.25-1.0.31 fail; exactly these 34 models of 1.0.31 fail "
               "so (every model built under init_empty_weights)",
        match=_ACCELERATE_RAISED + r"NotImplementedError: Cannot copy out of meta tensor; no data!"),
    KnownIssue(
        "vit_*_r*_s*_*,vit_*_resnet*,vitamin_*,vit_base_mci_224", "meta_init", "", variant="*-accelerate",
        reason="HybridEmbed measures its backbone's output by running it on torch.zeros(1, in_chans, H, W) at "
               "construction (layers/hybrid_embed.py, its own comment: '# FIXME whatif meta device?'): under "
               "accelerate's init_empty_weights() the backbone's parameters are on meta and the probe input on the "
               "CPU, so the forward raises RuntimeError 'Tensor on device meta is not on the expected device cpu!' "
               "(the 13 ResNet hybrids on 0.9.16 and 1.0.31, ViTamin and vit_base_mci_224 on 1.0.31: exactly these "
               "27 models of 1.0.31 fail so)",
        match=_ACCELERATE_RAISED + r"RuntimeError: Tensor on device meta is not on the expected device cpu!"),
    KnownIssue(
        "vit_*,flexivit_*", "pretrained", "<1.0.11", variant="*-pretrained_nonstrict-*",
        reason="_create_vision_transformer() passes pretrained_strict=strict itself, so a user's "
               "pretrained_strict=False fails (TypeError: build_model_with_cfg() got multiple values for keyword "
               "argument 'pretrained_strict'; seen 0.9.16, 1.0.3, 1.0.9; fixed in 1.0.11 by popping it)",
        match=r"raised TypeError: .*got multiple values for keyword argument 'pretrained_strict'",
    ),
    KnownIssue(_CUSTOM_LOAD_DEFAULT_MODELS, "pretrained", "<1.0.31", reason=_CUSTOM_LOAD_FILE, match=_NPZ_LOADER_ERROR),
    # the same misrouting wherever a family loads these models' default tag from a file
    KnownIssue(_CUSTOM_LOAD_DEFAULT_MODELS, "features", "<1.0.31", reason=_CUSTOM_LOAD_FILE, match=_NPZ_LOADER_ERROR),
    KnownIssue(_CUSTOM_LOAD_DEFAULT_MODELS, "geometry", "<1.0.31", reason=_CUSTOM_LOAD_FILE, match=_NPZ_LOADER_ERROR),
    KnownIssue("vit_*,flexivit_*", "patch_size", "<1.0.31", variant=_CUSTOM_LOAD_TAGS, reason=_CUSTOM_LOAD_FILE,
               match=_NPZ_LOADER_ERROR),
    KnownIssue("convit_*", "timm_utils", ">=1.0.31", test="test_timm_onnx_export", variant="*-torchscript",
               reason=_CONVIT_INFERENCE_BUFFER, match=r"Inference tensors cannot be saved for backward"),
    KnownIssue(_EVA_MODELS, "onnx", ">=1.0.26", variant="*-torchscript", reason=_EVA_IS_CAUSAL,
               match=r"scaled_dot_product_attention\(\): argument 'is_causal' must be bool, not Tensor"),
    KnownIssue("mvitv2_*,twins_*", "features", ">=1.0.3", variant="*-out_indices_default", reason=_BLOCK_MODULES,
               match=r"level 0: feature_info names module 'block.0', which the model does not have"),
    KnownIssue("hrnet_*", "features", "", variant="*-out_indices_default", reason=_HRNET_FEATURE_MODULES,
               match=r"level 0: feature_info names module 'stem', which the model does not have"),
    KnownIssue("hrnet_*", "features", "", variant="*-feature_cls_hook", reason=_HRNET_FEATURE_MODULES,
               match=r"feature_cls='hook'\) raised KeyError: 'stem'"),
    KnownIssue("hrnet_*", "features", "", variant="*-feature_cls_fx", reason=_HRNET_FEATURE_MODULES,
               match=r"feature_cls='fx'\) raised ValueError: node: 'stem' is not present"),
    KnownIssue("hrnet_*", "reset_classifier", "<1.0.31", variant="*global_pool_*",
               reason="HighResolutionNet.reset_classifier(num_classes, global_pool='avg') rebuilt the pool as 'avg' "
                      "when called without a pool, so reset_classifier(N) on a model built with global_pool='max' "
                      "silently switched it to average pooling (hrnet.py through 1.0.30; 1.0.31 defaults "
                      "global_pool=None and keeps the pool, commit aa4b5850, #2733). Found by the discovered pools",
               match=r"after reset_classifier\(\d+\): pooling configuration changed"),
    KnownIssue(_MOBILENETV3, "reset_classifier", "<1.0.31", variant="*global_pool_*", reason=_MOBILENETV3_RESET,
               match=r"after reset_classifier\(\d+\): pooling configuration changed"),
    KnownIssue(_MOBILENETV3, "reset_classifier", "<1.0.31", variant="*-default,*-num_classes_0",
               reason=_MOBILENETV3_RESET,
               match=r"after reset_classifier\(\d+, '(fast)?catavgmax'\): the forward raised RuntimeError: "
                     r"Given groups=1, weight of size"),
    KnownIssue("fastvit_*", "reparam", "", reason=_FASTVIT_REPMIXER, match="no attribute 'mixer'"),
    KnownIssue("regnetx_*,regnety_*,regnetv_*,nextvit_*", "reset_classifier", "<1.0.15", reason=_STALE_NUM_CLASSES,
               match=r"model.num_classes is \d+, expected 0"),
    KnownIssue(_FC_NORM_MODELS, "pretrained", "", variant="*-global_pool_", reason=_FC_NORM, match=_FC_NORM_MATCH),
    KnownIssue(
        "levit_*", "pretrained", "<1.0.14",
        reason="checkpoint_filter_fn pairs model and checkpoint keys by position (zip); safetensors "
               "stores keys sorted, so the model's own state_dict saved as .safetensors misaligns and a "
               "bare AssertionError is raised (fixed in 1.0.14 by dropping the old conversion)",
        match=r"pretrained=True\) raised AssertionError",
    ),
    KnownIssue("hrnet_*", "create", "<1.0.31", variant="*-head_incre", reason=_HRNET_INCRE,
               match="no attribute 'downsamp_modules'"),
    KnownIssue("hrnet_*", "pretrained", "<1.0.31", variant="*-head_incre", reason=_HRNET_INCRE,
               match="no attribute 'downsamp_modules'"),
    KnownIssue(
        "hrnet_*", "pretrained", "<1.0.3", variant="*-pretrained_nonstrict-*",
        reason=_STRICT_COLLISION.format(fn="hrnet") + " (fixed in 1.0.3 by popping it)",
        match="multiple values for keyword argument 'pretrained_strict'",
    ),
    KnownIssue(
        "dla*,mobilenetv3_*,tf_mobilenetv3_*,mobilenetv4_*,fbnetv3_*,lcnet_*,hardcorenas_*,inception_v3,"
        "mobilenetv5_*", "pretrained", "", variant="*-pretrained_nonstrict-*",
        reason=_STRICT_COLLISION.format(fn="dla/mnv3/hardcorenas/inception_v3/mnv5") +
        " (53 registered models in 1.0.31, found by building each with pretrained_strict=False)",
        match="multiple values for keyword argument 'pretrained_strict'",
    ),
)


def register_known_issues(*issues: KnownIssue) -> None:
    """Put entries in front of the registry (tests plant issues over their toys)."""
    global KNOWN_ISSUES
    KNOWN_ISSUES = tuple(i for i in issues if i not in KNOWN_ISSUES) + KNOWN_ISSUES


def matching_issue(model: str, check: str, param_id: str, timm_version: str,
                   registry: tuple[KnownIssue, ...] | None = None, test_name: str = "") -> KnownIssue | None:
    """The first registered issue covering this test on this timm, if any (the module's
    KNOWN_ISSUES, read at call time, unless a registry is given)."""
    for issue in KNOWN_ISSUES if registry is None else registry:
        if issue.applies(model, check, param_id, timm_version, test_name):
            return issue
    return None
