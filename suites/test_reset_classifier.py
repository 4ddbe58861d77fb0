"""reset_classifier round trips, for the default construction, every discovered pool and
the same after num_classes=0: (0), (N) keep the pool, (N, Q) switches to each other pool Q
and back restores it; shapes, pooling (attention pools included) and pre-logits unchanged.
Hypothesis picks N."""
import pytest

from harness.checks.reset_classifier import check_reset_classifier, make_subject
from harness.models.variants import reset_pools

pytestmark = [pytest.mark.reset_classifier, pytest.mark.cases("reset_classifier")]


def test_reset_classifier(model_case, reset_config, device, capabilities):
    subject = make_subject(model_case.model, device, model_case.facts.input_size, reset_config[1])
    check_reset_classifier(subject, model_case.family, pools=reset_pools(model_case.family, capabilities),
                           unpooled=capabilities.unpooled)
