"""The check families: one pytest marker each (../shared/CONTRACT.md), in report order.

A *check family* is what a suite checks (a marker); not to be confused with a *model
family* (registry.model_families: models that share a constructor's conventions) or a
*checkpoint family* (registry.checkpoint_families: the file layout a tag is stored in)."""
from __future__ import annotations

CHECK_FAMILY_DOCS: dict[str, str] = {
    "create": "construction of every head variant, forward contract",
    "pretrained": "loading a checkpoint the harness wrote, strict and not, per head variant",
    "reset_classifier": "reset_classifier round trips keep pooling and pre-logits",
    "patch_size": "pretrained tags loaded at another patch_size / img_size",
    "save_load": "state_dict and whole-module round trips within the candidate",
    "compat": "artifacts written by other timm releases load in the candidate",
    "reparam": "reparameterize_model keeps outputs, adds nothing, is idempotent",
    "onnx": "ONNX export (TorchScript and dynamo exporters) and onnxruntime parity",
    "golden": "outputs match the recorded float64 reference within the model's own noise",
    "benchmark": "inference throughput",
    "features": "features_only, forward_intermediates, feature_info",
    "geometry": "img_size, non-square inputs, dynamic_img_size, set_input_size",
    "layers": "timm.layers against torch references",
    "timm_utils": "timm's ONNX helper and training checkpoints",
    "meta_init": "meta-device and deferred init",
    "transforms": "compile, script/FX, channels_last, batch invariance, gradient checkpointing",
    "surface": "import under warnings-as-errors, registry diff",
}

CHECK_FAMILIES: tuple[str, ...] = tuple(CHECK_FAMILY_DOCS)
