"""golden: the deterministic model's logits, pre-logits and (sketched) features on the
seeded input match the recorded float64 reference within the model's own float32 noise
(harness/checks/golden.py). ``--update-golden`` records instead (a record whose values CHANGED
only with ``--accept-golden-changes``; a model too noisy for float32 is recorded for a float64 comparison; with
``--golden-missing-only`` a model that has a file is compared, not re-recorded); ``--golden-precision``
picks float32 or bf16/fp16 autocast, each with its own tolerance profile."""
import pytest

from harness.checks import golden

pytestmark = [pytest.mark.golden, pytest.mark.cases("models")]


def test_golden(model_case, device, harness_options, request):
    if device == "meta":
        facts = model_case.facts
        why = (f"{facts.param_count:,} parameters > --max-params {harness_options.max_params:,}"
               if facts.param_count is not None else f"not buildable on the meta device ({facts.meta_error})")
        pytest.skip(f"golden outputs are recorded only for numerically checked models: {why}")
    missing_only = request.config.getoption("--golden-missing-only")
    recorded = golden.golden_path(harness_options.golden_dir, model_case.model).exists()
    if harness_options.update_golden and not (missing_only and recorded):
        try:
            line = golden.update_golden(model_case.model, model_case.facts.input_size, harness_options.golden_dir,
                                        device, harness_options.accept_golden_changes)
        except (golden.GoldenChangedError, golden.GoldenNoiseError) as exc:
            pytest.fail(str(exc), pytrace=False)
        request.node.user_properties.append(("golden_update", line))
        return
    try:
        golden.check_golden(model_case.model, model_case.facts.input_size, harness_options.golden_dir, device,
                            request.config.getoption("--golden-precision"))
    except golden.GoldenFileError as exc:
        pytest.fail(str(exc), pytrace=False)
