"""Intended numeric changes, as data: a release that changed what some models compute on
purpose (a bug fix, a corrected formula). The differential check (compat suite,
test_compat_outputs) then expects those models to have changed against every baseline older
than that release: a strict expected failure whose message must match, so a change that
disappears (or a different failure) still fails the run. ``--ignore-known-issues`` ignores
these too. Each entry names the release, the reason and the evidence."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from packaging.version import Version


@dataclass(frozen=True)
class IntendedChange:
    models: str           # comma-separated fnmatch patterns over model names
    release: str          # the first release with the new numbers
    reason: str
    match: str = r"changed since timm"   # regex the failure message must contain

    def applies(self, model: str, candidate: str, baseline: str) -> bool:
        """The candidate has the change and the baseline predates it."""
        if not any(fnmatch.fnmatchcase(model, p.strip()) for p in self.models.split(",")):
            return False
        release = Version(self.release)
        return Version(candidate) >= release > Version(baseline)


INTENDED_CHANGES: tuple[IntendedChange, ...] = (
    IntendedChange(
        "vit_*_xp_*", "1.0.13",
        reason="RmsNorm computed x / sqrt(var(x) + eps) (centred variance) up to 1.0.12 and the root mean square from "
               "1.0.13 on (huggingface/pytorch-image-models#2380, commit 15406a93 'Fixing RmsNorm'); the ViT 'xp' "
               "models (ParallelScalingBlock, norm_layer=RmsNorm) change. The convnext *_rms models were switched to "
               "SimpleNorm (the old formula) in the same commit and do not change (the differential check shows it)"),
)


def register_intended_changes(*changes: IntendedChange) -> None:
    """Put entries in front of the registry (tests declare changes over their toys)."""
    global INTENDED_CHANGES
    INTENDED_CHANGES = tuple(c for c in changes if c not in INTENDED_CHANGES) + INTENDED_CHANGES


def matching_change(model: str, candidate: str, baseline: str) -> IntendedChange | None:
    return next((c for c in INTENDED_CHANGES if c.applies(model, candidate, baseline)), None)
