"""meta_init: models built on the meta device (torch.device('meta') with to_empty and
timm's buffer re-init; accelerate.init_empty_weights; device=/dtype= factory kwargs) and
materialized equal the normal build: shapes, dtypes, computed buffers, outputs
(harness/checks/meta_init.py). Ids: '<model>-<variant>'. Over --max-params only the
meta-device structure is checked."""
import pytest

from harness.checks.meta_init import check_meta_init

pytestmark = [pytest.mark.meta_init, pytest.mark.cases("meta_init")]


def test_meta_init(model_case, variant):
    check_meta_init(model_case.model, model_case.facts.input_size, variant, model_case.numeric)
