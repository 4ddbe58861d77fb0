"""The save_load check: within the candidate, the deterministic model written as the
cross-version export writes it (state_dict as safetensors, whole module with torch.save)
loads back and gives the outputs the saved model produced: the compat checks, against
the candidate's own artifacts instead of another release's."""
from __future__ import annotations

from pathlib import Path

from harness.checks.compat import ArtifactSet, check_pickle, check_state_dict
from harness.models import build
from harness.weights import artifacts


def save(model_name: str, root: Path) -> ArtifactSet:
    """Export the model into root/<timm version>/<model>/ (skipped when it verifies)."""
    artifacts.export_model(model_name, root, training_checkpoint=False)  # the timm_utils family checks those
    return ArtifactSet(build.timm_version(), model_name, root / build.timm_version() / model_name)


def check_state_dict_round_trip(saved: ArtifactSet, device: str) -> None:
    check_state_dict(saved, device)


def check_pickle_round_trip(saved: ArtifactSet, device: str) -> None:
    manifest = artifacts.verify(saved.path)
    if not manifest.has_pickle:
        raise AssertionError(f"torch.save(model) failed: {manifest.data['pickle_error']}")
    check_pickle(saved, device)
