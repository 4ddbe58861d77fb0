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
    variant: str = "*"     # fnmatch over the test's parameter id (after the model name)

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

KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "hrnet_*", "pretrained", "<1.0.3", variant="*-pretrained_nonstrict-*",
        reason=_STRICT_COLLISION.format(fn="hrnet") + " (fixed in 1.0.3 by popping it)",
    ),
    KnownIssue(
        "mobilenetv3_*,tf_mobilenetv3_*,lcnet_*,fbnetv3_*", "pretrained", "",
        variant="*-pretrained_nonstrict-*", reason=_STRICT_COLLISION.format(fn="mnv3"),
    ),
)


def matching_issue(model: str, check: str, param_id: str, timm_version: str,
                   registry: tuple[KnownIssue, ...] = KNOWN_ISSUES) -> KnownIssue | None:
    """The first registered issue covering this test on this timm, if any."""
    for issue in registry:
        if issue.applies(model, check, param_id, timm_version):
            return issue
    return None
