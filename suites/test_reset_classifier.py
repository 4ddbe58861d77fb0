"""reset_classifier round trips, for the default construction, every discovered pool and
the same after num_classes=0: (0), (N) keep the pool, (N, Q) switches to each other pool Q
and back restores it; shapes, pooling (attention pools included) and pre-logits unchanged.
Hypothesis picks N."""
import pytest

from harness.checks.reset_classifier import check_reset_classifier, make_subject

pytestmark = [pytest.mark.reset_classifier, pytest.mark.cases("reset_classifier")]


def test_reset_classifier(model_case, reset_config, device, capabilities):
    subject = make_subject(model_case.model, device, model_case.facts.input_size, reset_config[1])
    own = (capabilities.default_pool,)
    pools = tuple(p for p in (*(() if model_case.family.fixed_pool else capabilities.pools), *own) if p is not None)
    check_reset_classifier(subject, model_case.family, pools=pools, unpooled=capabilities.unpooled)
