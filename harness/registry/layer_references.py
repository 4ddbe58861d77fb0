"""The layers check family's table: which torch reference each kind of timm layer is
compared with (harness.checks.layers). Which timm layers fall under each entry is
discovered by scanning timm.layers (classes, their bases, timm's own norm / act name
registries, the attention switch a layer reads); nothing here lists timm classes.

Keys are what a discovered class is matched on, references are names of the functions in
harness.checks.layers.REFERENCES (data only here: stdlib imports)."""
from __future__ import annotations

# timm's norm registry name (timm.layers.get_norm_layer) -> reference. '2d' in the class
# name means channels at dim 1 (NCHW), otherwise the last dim (timm's naming convention).
NORM_BY_NAME: dict[str, str] = {
    "layernorm": "layer_norm", "layernorm2d": "layer_norm", "layernormfp32": "layer_norm",
    "layernorm2dfp32": "layer_norm",
    "rmsnorm": "rms_norm", "rmsnorm2d": "rms_norm", "rmsnormfp32": "rms_norm", "rmsnorm2dfp32": "rms_norm",
    "simplenorm": "simple_norm", "simplenorm2d": "simple_norm", "simplenormfp32": "simple_norm",
    "simplenorm2dfp32": "simple_norm",
    "groupnorm": "group_norm", "groupnorm1": "group_norm",
    "batchnorm2d": "batch_norm", "frozenbatchnorm2d": "batch_norm",
}

# A torch base class (qualified name) -> reference, for timm norms not in the registry
# (LayerNormExp2d, the *Act norms built with apply_act=False).
NORM_BY_BASE: dict[str, str] = {
    "torch.nn.modules.normalization.LayerNorm": "layer_norm",
    "torch.nn.modules.normalization.GroupNorm": "group_norm",
    "torch.nn.modules.batchnorm.BatchNorm2d": "batch_norm",
}

# timm's activation registry name (timm.layers.get_act_layer; a class defined in
# timm.layers.activations* is matched by its name: GELUTanh -> gelu_tanh, HardMishMe ->
# hard_mish) -> reference.
ACT_BY_NAME: dict[str, str] = {
    "gelu": "gelu", "gelu_tanh": "gelu_tanh", "quick_gelu": "quick_gelu", "silu": "silu", "swish": "silu",
    "mish": "mish", "sigmoid": "sigmoid", "tanh": "tanh", "hard_sigmoid": "hard_sigmoid",
    "hard_swish": "hard_swish", "hard_mish": "hard_mish", "prelu": "prelu",
}

# A layer that reads this attribute in its forward has a fused path
# (F.scaled_dot_product_attention) and an explicit one (softmax(q k^T * scale) v); each is
# compared in float32 with the *other* computed in float64.
ATTENTION_SWITCH = "fused_attn"

# Pool names (the suffix after an optional 'fast' prefix) -> reference, for
# SelectAdaptivePool2d with every pool name timm.layers.adaptive_avgmax_pool compares with,
# and the fixed-type pool classes of that module matched by the pool name in theirs.
POOL_BY_NAME: dict[str, str] = {"catavgmax": "catavgmax", "avgmax": "avgmax", "max": "max", "avg": "avg",
                                "": "identity"}
POOL_MODULE = "timm.layers.adaptive_avgmax_pool"

# Switches toggled for norms: each norm is also built with timm.layers.set_fast_norm(True)
# (the '-fast_norm' id) where the release has it.
FAST_NORM_SWITCH = "set_fast_norm"
