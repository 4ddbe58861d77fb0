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
    variant: str = "*"     # fnmatch over the test's full parameter id
    match: str = ""        # regex the failure message must contain; any other failure still fails

    def applies(self, model: str, check: str, param_id: str, timm_version: str) -> bool:
        if check != self.check:
            return False
        if not any(fnmatch.fnmatchcase(model, p.strip()) for p in self.models.split(",")):
            return False
        if not fnmatch.fnmatchcase(param_id, self.variant):
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

KNOWN_ISSUES: tuple[KnownIssue, ...] = (
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


def matching_issue(model: str, check: str, param_id: str, timm_version: str,
                   registry: tuple[KnownIssue, ...] | None = None) -> KnownIssue | None:
    """The first registered issue covering this test on this timm, if any (the module's
    KNOWN_ISSUES, read at call time, unless a registry is given)."""
    for issue in KNOWN_ISSUES if registry is None else registry:
        if issue.applies(model, check, param_id, timm_version):
            return issue
    return None
