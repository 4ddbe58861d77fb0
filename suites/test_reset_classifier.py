"""reset_classifier round trips: (0), (N), (N, pool) for each supported pool type, back
to the original configuration; shapes, pooling kept (attention pools included) and
pre-logits unchanged. Hypothesis picks N and the pools."""
import pytest

from harness.checks.reset_classifier import check_reset_classifier, make_subject

pytestmark = [pytest.mark.reset_classifier, pytest.mark.cases("reset_classifier")]


def test_reset_classifier(model_case, reset_config, device):
    subject = make_subject(model_case.model, device, model_case.facts.input_size, reset_config[1])
    check_reset_classifier(subject, model_case.family)
