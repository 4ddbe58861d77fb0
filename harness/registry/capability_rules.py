"""The rules capability discovery applies (harness.models.capabilities), as data: what
counts as a head kwarg, which constructor kwargs are exercised and how their effect is
observed, and how a probe's exception is read. Which models have which capability is
never listed here: it is read from each model (its constructor's signature, meta-device
builds and forwards).

Why each rule exists is written beside it; a rule is the meaning of a kwarg in timm's
constructors, not a list of models."""
from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- probe outcomes

# A constructor that *rejects* a value raises one of these (timm validates with assert,
# raises ValueError/KeyError for unknown names, TypeError for an unexpected kwarg or a str
# where a class is expected, NotImplementedError for combinations it does not build): the
# value is simply not a capability. Any other exception from a constructor, or any exception
# from the forward of a model that *was* built, is a broken case: it is collected and its
# check fails with the exception (a probe must not swallow the failure a family exists for).
REJECTIONS: tuple[str, ...] = ("AssertionError", "ValueError", "TypeError", "NotImplementedError", "KeyError")

# A meta-device forward that raises one of these, or whose message matches, hit a limitation
# of the meta device (an op without a meta kernel, a value read with .item()), not a bug: the
# case exists and the numeric check decides.
META_LIMIT_TYPES: tuple[str, ...] = ("NotImplementedError",)
META_LIMIT_MESSAGE = r"meta|\.item\(\)|data-dependent|Cannot copy out of|not implemented for"

# ---------------------------------------------------------------- heads

# Constructor parameters that select a classification head: `head`-prefixed names plus
# the two pre-logits switches timm uses. Excluded: names with the same prefix that size
# the attention heads or initialise the head, which change no head *variant*.
HEAD_KWARG_PREFIXES: tuple[str, ...] = ("head",)
HEAD_KWARG_NAMES: tuple[str, ...] = ("fc_norm", "pre_logits")
HEAD_KWARG_EXCLUDED: tuple[str, ...] = ("head_dim*", "heads*", "head_init*", "head_mul", "head_widths",
                                        "head_features", "head_first", "head_drop*", "head_ratio*")
# An Optional[int] head kwarg whose default is None (e.g. head_hidden_size) is probed with
# this width: small, so the pre-logits layer it adds is cheap.
HEAD_HIDDEN_PROBE = 64

# ---------------------------------------------------------------- pools

# The global_pool values a model is probed with are the string literals its own module
# and the timm.layers modules it is built from compare a pool name with (``global_pool in
# (...)``, ``pool_type == '...'``, ``pool_type.endswith('...')`` with ``startswith('fast')``),
# plus '' (no pooling). Nothing here lists pools by hand.
POOL_KWARG = "global_pool"


# ---------------------------------------------------------------- constructor kwargs

@dataclass(frozen=True)
class KwargProbe:
    """A constructor kwarg the create family exercises wherever a model's constructor
    signature has it.

    values: what is passed (JSON-able); for ``pick_*`` rules the values are chosen per
        model from what it does not already use (see harness.models.capabilities).
    effect: how the declared effect is observed (harness.checks.constructor_kwargs):
        'dropout'    eval output equals the model built without it; train output differs
        'init_value' some parameter of the freshly initialised model (timm's own init,
                     before fill_deterministic) equals the value everywhere
        'tokens'     num_prefix_tokens and the forward_features token count agree with
                     the prefix tokens and the patch grid
        'module'     the built model contains the layer class timm resolves the value to
    companions: extra kwargs tried, in order, when the kwarg alone is rejected (a ViT
        without a class token cannot keep global_pool='token')."""

    name: str
    values: tuple = ()
    effect: str = "runs"
    companions: tuple[dict, ...] = field(default_factory=lambda: ({},))
    reason: str = ""


_DROP = "dropout must be off in eval mode and on in train mode"
_INIT = "a layer-scale init value must show in the initialised parameters (timm 1.0.21 ignored it)"
_TOKENS = "prefix tokens must be what num_prefix_tokens says and what forward_features returns"
_NO_TOKEN_POOL = ({}, {"global_pool": "avg"})

KWARG_PROBES: tuple[KwargProbe, ...] = (
    KwargProbe("drop_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("drop_path_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("attn_drop_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("proj_drop_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("pos_drop_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("patch_drop_rate", (0.25,), "dropout", reason=_DROP),
    KwargProbe("init_values", (0.0123,), "init_value", reason=_INIT),
    KwargProbe("ls_init_value", (0.0123,), "init_value", reason=_INIT),
    KwargProbe("layer_scale_init_value", (0.0123,), "init_value", reason=_INIT),
    KwargProbe("class_token", ("pick_flip",), "tokens", _NO_TOKEN_POOL, reason=_TOKENS),
    KwargProbe("no_embed_class", ("pick_flip",), "tokens", _NO_TOKEN_POOL, reason=_TOKENS),
    KwargProbe("reg_tokens", (2,), "tokens", _NO_TOKEN_POOL, reason=_TOKENS),
    KwargProbe("pos_embed", ("pick_literals",), "tokens", reason=_TOKENS),
    KwargProbe("act_layer", ("pick_act",), "module", reason="an activation chosen by name must be the one built"),
    KwargProbe("norm_layer", ("pick_norm",), "module", reason="a norm chosen by name must be the one built"),
)

# Activation and norm names tried for 'pick_act' / 'pick_norm' (the first few the model does
# not already contain; norms of the same layout as the model's own, channels-last or NCHW).
ACT_CHOICES: tuple[str, ...] = ("silu", "relu", "gelu")
NORM_CHOICES_LAST: tuple[str, ...] = ("rmsnorm", "layernorm")
NORM_CHOICES_2D: tuple[str, ...] = ("layernorm2d", "rmsnorm2d", "groupnorm")
PICK_LIMIT = 1  # values per picked kwarg: one alternative proves the choice is wired


def kwarg_probe(name: str) -> KwargProbe | None:
    return next((p for p in KWARG_PROBES if p.name == name), None)
