"""pytest plugin for the harness's tests: a smoke set of toys in which one model is no
longer registered and one onnx scope pattern selects nothing, so ``--models smoke`` must
report both as failures (suites/test_smoke_set.py)."""
from harness.registry import smoke
from tests.toys import toy_models  # noqa: F401 - registers the toys

smoke.SMOKE_MODELS = ("toy_ok", "toy_retired_model")
smoke.SMOKE_SCOPES = {"onnx": ("toy_ok-torchscript", "toy_ok-exporter_renamed"), "patch_size": ()}
