"""reset_classifier round trips: (0), (N), (N, pool) for each supported pool type, back
to the original configuration; shapes, pooling kept (attention pools included) and
pre-logits unchanged. Hypothesis picks N and the pools."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.reset_checks import apply_resets, make_subject

pytestmark = pytest.mark.reset_classifier

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def subject(model_case, reset_config, device):
    return make_subject(model_case.model, device, model_case.facts.input_size, reset_config[1])


def test_reset_classifier(model_case, subject):
    s = subject
    apply_resets(s, [(0,)], keeps_pool=True)
    apply_resets(s, [(s.num_classes + 3,)], keeps_pool=True)
    if s.pool is not None:
        apply_resets(s, [(0, s.pool), (s.num_classes, s.pool)], keeps_pool=True)  # round trip
        apply_resets(s, [(0,), (s.num_classes,)], keeps_pool=True)
    pools = sorted(set(model_case.family.pool_types or ()) | ({s.pool} if s.pool is not None else set()))
    if not pools:
        return

    @SETTINGS
    @given(n=st.integers(min_value=1, max_value=1000), pool=st.sampled_from(pools))
    def reset_with_pool(n, pool):
        apply_resets(s, [(n, pool)], keeps_pool=pool == s.pool)

    reset_with_pool()
    if model_case.family.pool_types is not None and model_case.family.unpooled_features:
        apply_resets(s, [(0, "")], keeps_pool=False)  # unpooled features
