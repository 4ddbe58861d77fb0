"""features: features_only=True at default, subset, negative and invalid out_indices (the
levels asked for, in order, described by feature_info with channels and strides measured);
forward_intermediates (final output == forward_features, intermediates == the features
model's, stop_early / intermediates_only / output_fmt change nothing); every other feature
wrapper returns the same tensors; prune_intermediate_layers keeps what it was asked to; the
pretrained features model holds every backbone tensor; TorchScript where timm supports it.
Models over --max-params: the same on the meta device, shapes only."""
import pytest

from harness.checks import features

pytestmark = pytest.mark.features


def _reference(model_case, device, source):
    """The default features model at every level, built once per worker and model (inside
    the test, so a model whose reference cannot be built fails its tests, not errors)."""
    key = str(source.files.get("safetensors", "meta"))
    return features.reference(model_case.model, device, model_case.facts.features, model_case.facts.input_size,
                              source.overlay(device), key)


@pytest.mark.cases("features_out_indices")
def test_features_out_indices(model_case, feature_case, device, source_checkpoint):
    features.check_out_indices(_reference(model_case, device, source_checkpoint), feature_case)


@pytest.mark.cases("features_intermediates")
def test_forward_intermediates(model_case, feature_case, device, source_checkpoint):
    features.check_intermediates(_reference(model_case, device, source_checkpoint), feature_case)


@pytest.mark.cases("features_wrappers")
def test_feature_wrapper(model_case, feature_case, device, source_checkpoint):
    features.check_wrapper(_reference(model_case, device, source_checkpoint), feature_case)


@pytest.mark.cases("features_prune")
def test_prune_intermediate_layers(model_case, device, source_checkpoint):
    features.check_prune(_reference(model_case, device, source_checkpoint))


@pytest.mark.cases("features_models")
def test_features_pretrained(model_case, device, source_checkpoint):
    features.check_features_pretrained(_reference(model_case, device, source_checkpoint),
                                       source_checkpoint.state_dict)


@pytest.mark.cases("features_script")
def test_features_script(model_case, device, source_checkpoint):
    features.check_script(_reference(model_case, device, source_checkpoint))
