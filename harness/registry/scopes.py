"""The slow scope: the cases a run collects only with ``--slow`` (the sweep and the nightly
pass it; ``nox -s compat`` and ``pytest suites`` leave them out).

Each entry is a check family, an fnmatch pattern over the test's parameter id, and why the
case is slow. Cases leave the default only here, with a reason, and a run says so in its
summary; an expected-status file is compared against what the scope collected (the slow
cases are deselected, not vanished). Figures: the smoke run of 2026-12-01 (15 models,
1,824 test-seconds) spent 344 s in dynamo ONNX exports, 215 s in torch.compile.
"""
from __future__ import annotations

import fnmatch

SLOW_CASES: dict[str, tuple[tuple[str, str], ...]] = {
    "onnx": (("*-dynamo*", "the dynamo ONNX exporter (torch.export): 10-60 s a model; the torchscript "
                           "exporter and its onnxruntime parity stay in the default"),),
    "timm_utils": (("*-dynamo*", "timm.utils.onnx_export(use_dynamo=True): 10-60 s a model"),),
    "transforms": (("*-compile_*", "torch.compile (dynamo graph capture, aot_eager, inductor on CUDA): "
                                   "5-30 s a model; script, FX, channels_last, batch invariance and "
                                   "gradient checkpointing stay"),),
    "benchmark": (("*", "throughput against a baseline: timed only without xdist, on the nightly's "
                        "GPU runners"),),
}
# patch_size: the default keeps the first tag of each checkpoint family per model (the layout
# decides the conversion path: the OpenCLIP resample miss was a family, not a tag); the others
# are in the slow scope (harness.checks.patch_size.PatchCase.first_of_family).
PATCH_SIZE_REASON = "a further pretrained tag of a checkpoint family already checked for this model"
# create/pretrained global_pool_P and the reset configs built with P: the default keeps the
# attention pools and the first other pool of each model (harness.models.variants.further_pools);
# every pool is still built and reset into from the default construction.
FURTHER_POOL_REASON = ("a further discovered pool built as the model's own (the attention pools and the first "
                       "other pool stay, and reset_classifier still switches to every pool)")


def slow_reason(family: str, param_id: str, params: dict | None = None) -> str:
    """Why a case is in the slow scope ('' when the default runs it)."""
    for pattern, reason in SLOW_CASES.get(family, ()):
        if fnmatch.fnmatchcase(param_id, pattern):
            return reason
    params = params or {}
    if family == "patch_size":
        case = params.get("patch_case")
        if case is not None and not getattr(case, "first_of_family", True):
            return PATCH_SIZE_REASON
    if family in ("create", "pretrained") and getattr(params.get("head_variant"), "further", False):
        return FURTHER_POOL_REASON
    config = params.get("reset_config")
    if family == "reset_classifier" and isinstance(config, tuple) and len(config) > 2 and config[2]:
        return FURTHER_POOL_REASON
    return ""


def describe_slow_scope(dropped: int) -> str:
    """One line for the run summary: ``dropped`` slow cases were deselected."""
    parts = [f"{family} {'/'.join(p for p, _ in entries)}" for family, entries in SLOW_CASES.items()]
    return (f"{dropped} cases of the slow scope are not collected (" + ", ".join(parts)
            + ", patch_size tags beyond the first per checkpoint family, create/pretrained/reset_classifier "
              "pools beyond the first and the attention pools): --slow runs it")
