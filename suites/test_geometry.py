"""geometry: non-square img_size=(H, W) and inputs (multiples of the stride and not),
dynamic_img_size at its own and other sizes, dynamic_img_pad, set_input_size(), and the
position embedding resampled on load, each built from the native checkpoint the way users
load one; shapes and values that tell H from W. Models over --max-params: shapes on meta."""
import pytest

from harness.checks import geometry

pytestmark = [pytest.mark.geometry, pytest.mark.cases("geometry")]


def test_geometry(model_case, geometry_case, device, source_checkpoint):
    key = str(source_checkpoint.files.get("safetensors", "meta"))
    ref = geometry.reference(model_case.model, device, model_case.facts.geometry, source_checkpoint.overlay(device),
                             source_checkpoint.state_dict, key)
    geometry.check_geometry(ref, geometry_case)
