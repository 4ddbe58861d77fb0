"""save_load: within the candidate, the deterministic model written as the export writes
it (state_dict as safetensors, whole module with torch.save) loads back: a strict
state_dict load into a fresh create_model and a torch.load of the pickle (after its hash
verified) both give the outputs the saved model produced. Numeric models only."""
from pathlib import Path

import pytest

from harness import artifacts, build
from harness.compat import ArtifactSet, check_pickle, check_state_dict

pytestmark = pytest.mark.save_load


@pytest.fixture
def saved(model_case, device, tmp_path_factory) -> ArtifactSet:
    """The model exported once per worker into a temporary DIR/<version>/<model>/."""
    if device == "meta":
        pytest.skip("over --max-params: save/load round trips need real weights")
    root = Path(tmp_path_factory.getbasetemp()) / "save_load"
    artifacts.export_model(model_case.model, root)
    return ArtifactSet(build.timm_version(), model_case.model, root / build.timm_version() / model_case.model)


def test_save_load_state_dict(model_case, saved, device):
    check_state_dict(saved, device)


def test_save_load_pickle(model_case, saved, device):
    manifest = artifacts.verify(saved.path)
    if not manifest.has_pickle:
        raise AssertionError(f"torch.save(model) failed: {manifest.data['pickle_error']}")
    check_pickle(saved, device)
