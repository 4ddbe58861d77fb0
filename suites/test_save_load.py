"""save_load: within the candidate, the deterministic model written as the export writes
it (state_dict as safetensors, whole module with torch.save) loads back: a strict
state_dict load into a fresh create_model and a torch.load of the pickle (after its hash
verified) both give the outputs the saved model produced. Numeric models only."""
from pathlib import Path

import pytest

from harness.checks import save_load

pytestmark = [pytest.mark.save_load, pytest.mark.cases("models")]


@pytest.fixture
def saved(model_case, device, tmp_path_factory) -> save_load.ArtifactSet:
    """The model exported once per worker into a temporary DIR/<version>/<model>/."""
    if device == "meta":
        pytest.skip("over --max-params: save/load round trips need real weights")
    return save_load.save(model_case.model, Path(tmp_path_factory.getbasetemp()) / "save_load")


def test_save_load_state_dict(model_case, saved, device):
    save_load.check_state_dict_round_trip(saved, device)


def test_save_load_pickle(model_case, saved, device):
    save_load.check_pickle_round_trip(saved, device)
