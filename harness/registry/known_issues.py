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
        "dpn*", "compat", ">=1.0.31", test=_PICKLE, variant=_BEFORE_1_0_31,
        reason="timm 1.0.31 renamed dpn.CatBnAct to BnAct without an alias, so torch.load of a DPN "
               "pickled by any earlier release raises AttributeError: Can't get attribute 'CatBnAct' "
               "on <module 'timm.models.dpn'> (seen for 0.9.16 and 1.0.12 pickles; 1.0.30 still had it)",
        match=r"Can't get attribute 'CatBnAct'"),
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

KNOWN_ISSUES: tuple[KnownIssue, ...] = _COMPAT_PICKLE_ISSUES + _SURFACE_ISSUES + (
    KnownIssue("fastvit_*", "reparam", "", reason=_FASTVIT_REPMIXER, match="no attribute 'mixer'"),
    KnownIssue("regnetx_*,regnety_*,regnetv_*,nextvit_*", "reset_classifier", "<1.0.15", reason=_STALE_NUM_CLASSES,
               match=r"model.num_classes is \d+, expected 0"),
    KnownIssue(
        "beit_*", "pretrained", "", variant="*-global_pool_",
        reason="Beit(global_pool='') builds 'norm' where the avg-pool checkpoint has 'fc_norm'; the "
               "load is non-strict because the classifier changed, so the pretrained fc_norm is "
               "dropped and norm keeps its init values (seen 0.9.16, 1.0.12, 1.0.31; ViT remaps it)",
        match=r"norm.weight: not in the checkpoint",
    ),
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
    KnownIssue(
        "vit_*,flexivit_*", "pretrained", "<1.0.11", variant="*-pretrained_nonstrict-*",
        reason="_create_vision_transformer() passes pretrained_strict=strict itself, so a user's "
               "pretrained_strict=False fails (TypeError/KeyError 'pretrained_strict'; seen 0.9.16, 1.0.3, "
               "1.0.9; fixed in 1.0.11 by popping it)",
        match="pretrained_strict",
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
