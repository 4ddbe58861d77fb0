"""What each model supports, read from the model itself on the meta device: the
``global_pool`` values its constructor accepts, the head kwargs and constructor kwargs its
signature has (and the values that build), attention pools, prefix tokens, whether its
input size is fixed, the in_chans values a pretrained load adapts to, and the kwargs its
entry point passes to ``build_model_with_cfg``. Gathered with the facts (models.facts) and
cached with them, so collection never rebuilds it.

A value is a capability when the constructor accepts it. A constructor that *rejects* it
(registry.capability_rules.REJECTIONS) makes no case; a constructor that crashes otherwise,
or a model whose meta forward then raises (other than a meta-device limitation), is a
*broken* case: it is still collected, so its check fails with the exception instead of the
case silently vanishing. The rules are in registry.capability_rules; the pool names probed
are the literals timm's own code compares pool names with."""
from __future__ import annotations

import contextlib
import fnmatch
import functools
import inspect
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from harness.models import build, heads, meta_ops
from harness.models.facts import cache_key
from harness.registry import capability_rules as rules

IN_CHANS_PROBES = (1, 4)
CACHE_KIND = "capabilities/v1"  # bump when discovery changes what it records


@dataclass(frozen=True)
class Capabilities:
    default_pool: str | None = None
    pools: tuple[str, ...] = ()            # accepted global_pool values other than the default and ''
    unpooled: bool = False                 # num_classes=0, global_pool='' is accepted
    attn_pools: tuple[str, ...] = ()       # pools (the default included) that build an attention pool
    ignored_pools: tuple[str, ...] = ()    # accepted but no pooling attribute changed (reported only)
    head_kwargs: dict[str, list] = field(default_factory=dict)   # name -> values that build
    ctor_kwargs: dict[str, dict] = field(default_factory=dict)   # case id -> create kwargs
    in_chans: tuple[int, ...] = ()         # in_chans values that build, where the cfg names a first conv
    entry_kwargs: tuple[str, ...] = ()     # kwargs the entry point passes to build_model_with_cfg
    num_prefix_tokens: int | None = None
    fixed_input_size: bool = False
    broken: dict[str, str] = field(default_factory=dict)         # case -> the exception, for the report
    error: str = ""                        # discovery itself failed (the default model did not build)

    @staticmethod
    def from_json(data: dict | None) -> "Capabilities":
        if not data:
            return Capabilities()
        tuples = ("pools", "attn_pools", "ignored_pools", "in_chans", "entry_kwargs")
        return Capabilities(**{**data, **{k: tuple(data.get(k) or ()) for k in tuples}})

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- reading exceptions

def _is_rejection(exc: BaseException) -> bool:
    if type(exc).__name__ not in rules.REJECTIONS:
        return False
    # a TypeError is a rejection only when it is about the arguments, not a crash inside
    return not isinstance(exc, TypeError) or bool(re.search(r"unexpected keyword|'str' object|argument", str(exc)))


def _is_meta_limit(exc: BaseException) -> bool:
    return type(exc).__name__ in rules.META_LIMIT_TYPES or bool(re.search(rules.META_LIMIT_MESSAGE, str(exc)))


def _describe(what: str, exc: BaseException) -> str:
    return f"{what} raised {type(exc).__name__}: {exc}"[:300]


@dataclass
class Probe:
    status: str           # 'ok', 'rejected' or 'broken'
    message: str = ""
    model: nn.Module | None = None


def probe(model_name: str, kwargs: dict) -> Probe:
    """Build on the meta device with kwargs. Only construction decides whether a case
    exists: a forward that fails is the check's business, so it is not run here (that also
    halves discovery time). A rejection is not retried outside the meta device context."""
    import timm

    try:
        with torch.device("meta"), meta_ops.fast_meta_ops():
            return Probe("ok", "", timm.create_model(model_name, **kwargs).eval())
    except Exception as exc:  # noqa: BLE001 - read by the rules, never swallowed: broken cases are kept
        if _is_rejection(exc):
            return Probe("rejected", _describe(f"create_model({model_name!r}, **{kwargs})", exc))
    try:
        # constructors that read values (build.create's fallback)
        with build.registered_on_meta(), meta_ops.fast_meta_ops():
            return Probe("ok", "", timm.create_model(model_name, **kwargs).eval())
    except Exception as exc:  # noqa: BLE001 - as above
        status = "rejected" if _is_rejection(exc) else "broken"
        return Probe(status, _describe(f"create_model({model_name!r}, **{kwargs})", exc))


# ---------------------------------------------------------------- literals in timm's source

def _patterns(name: str) -> dict[str, re.Pattern]:
    n = re.escape(name)
    return {
        "compare": re.compile(rf"\b{n}\s*(?:==|!=)\s*['\"]([A-Za-z0-9_]*)['\"]"),
        "member": re.compile(rf"\b{n}\s+(?:not\s+)?in\s*[\(\[\{{]([^\)\]\}}]*)[\)\]\}}]"),
        "ends": re.compile(rf"\b{n}\.endswith\(\s*['\"](\w+)['\"]"),
        "starts": re.compile(rf"\b{n}\.startswith\(\s*['\"](\w+)['\"]"),
    }


_STRING = re.compile(r"['\"]([A-Za-z0-9_]*)['\"]")


def literals(source: str, names: tuple[str, ...]) -> set[str]:
    """String values ``source`` compares any of ``names`` with (==, in (...), endswith with
    a startswith prefix), lower-cased: the values that code path knows."""
    found: set[str] = set()
    for name in names:
        pats = _patterns(name)
        found |= set(pats["compare"].findall(source))
        for group in pats["member"].findall(source):
            found |= set(_STRING.findall(group))
        suffixes, prefixes = set(pats["ends"].findall(source)), set(pats["starts"].findall(source))
        found |= {p + s for p in prefixes for s in suffixes}
    return {v.lower() for v in found}


@functools.lru_cache(maxsize=None)
def _module_source(module_name: str) -> str:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""


def pool_candidates(model_name: str, model: nn.Module) -> list[str]:
    """The pool names the model's own module and the timm.layers modules it is built from
    compare a pool with."""
    modules = {build.entrypoint_module(model_name), type(model).__module__}
    modules |= {type(m).__module__ for m in model.modules() if type(m).__module__.startswith("timm.layers")}
    found: set[str] = set()
    for mod in sorted(modules):
        found |= literals(_module_source(mod), ("global_pool", "pool_type"))
    return sorted(found)


def _class_source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


# ---------------------------------------------------------------- entry point kwargs

@contextlib.contextmanager
def capture_builder_kwargs() -> Iterator[list[dict[str, Any]]]:
    """Record the model kwargs (those build_model_with_cfg does not consume itself) of each
    outermost build_model_with_cfg call made inside the block. Patched in every module that
    imported it by name, as entry points do."""
    from timm.models import _builder

    original = _builder.build_model_with_cfg
    signature = inspect.signature(original)
    calls: list[dict[str, Any]] = []
    depth = [0]

    def wrapper(*args, **kwargs):
        if depth[0] == 0:
            bound = signature.bind(*args, **kwargs)
            calls.append(dict(bound.arguments.get("kwargs", {})))
        depth[0] += 1
        try:
            return original(*args, **kwargs)
        finally:
            depth[0] -= 1

    name = original.__name__  # entry-point modules (timm's, or any registering models) import it by name
    patched = [(m, name) for m in list(sys.modules.values())
               if getattr(m, "__dict__", {}).get(name) is original]
    for module, attr in patched:
        setattr(module, attr, wrapper)
    try:
        yield calls
    finally:
        for module, attr in patched:
            setattr(module, attr, original)


def entry_kwargs(model_name: str, device: str = "meta", **user_kwargs) -> tuple[nn.Module, dict[str, Any]]:
    """The model and the model kwargs its entry point passed to build_model_with_cfg ({}
    where it does not call it)."""
    with capture_builder_kwargs() as calls:
        model = build.create(model_name, device=device, **user_kwargs)
    return model, (calls[0] if calls else {})


# ---------------------------------------------------------------- discovery

def constructor_params(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters of cls.__init__, following the bases while a constructor
    forwards ``**kwargs`` to its parent (VisionTransformerDistilled(*args, **kwargs))."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is nn.Module or "__init__" not in vars(klass):
            continue
        try:
            sig = inspect.signature(klass.__init__)
        except (TypeError, ValueError):
            break
        for name, p in sig.parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return params


def _head_kwarg_names(params: dict[str, inspect.Parameter]) -> list[str]:
    def is_head(name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, p) for p in rules.HEAD_KWARG_EXCLUDED):
            return False
        return name.startswith(rules.HEAD_KWARG_PREFIXES) or name in rules.HEAD_KWARG_NAMES
    return [n for n in params if is_head(n)]


def _head_values(name: str, default: Any, source: str) -> list:
    if isinstance(default, bool):
        return [not default]
    if isinstance(default, str):
        return sorted((literals(source, (name,)) | {""}) - {default})
    if default is None and re.search(r"hidden|size|dim", name):
        return [rules.HEAD_HIDDEN_PROBE]
    return []


def _resolved_classes(kind: str, names: tuple[str, ...]) -> dict[str, type]:
    from timm import layers

    get = getattr(layers, "get_act_layer" if kind == "act" else "get_norm_layer", None)
    out = {}
    for n in names:
        try:
            cls = get(n) if get is not None else None
        except Exception:  # noqa: BLE001 - a name this release does not know
            cls = None
        if isinstance(cls, type):
            out[n] = cls
    return out


def _nchw_norm_name(cls: type) -> bool:
    name = cls.__name__.lower()
    return "norm" in name and "2d" in name


def _norm_class(value: Any) -> type | None:
    """The class a norm_layer default resolves to (a class, a partial of one, a timm name)."""
    if isinstance(value, str):
        from timm import layers

        try:
            value = layers.get_norm_layer(value)
        except Exception:  # noqa: BLE001 - a name this release does not know
            return None
    if isinstance(value, functools.partial):
        value = value.func
    return value if isinstance(value, type) else None


def _norm_over_channels_first(model: nn.Module, default: Any) -> bool:
    """Whether the norm a model's norm_layer builds works on NCHW maps: read from the
    constructor's default where it names a class (ResNetV2's partial(GroupNormAct): a GroupNorm
    normalizes dim 1 whatever its name), else from the norms in the model named so
    (BatchNorm2d, LayerNorm2d), outside a hybrid ViT's patch embedding, which norm_layer does
    not build."""
    cls = _norm_class(default)
    if cls is not None:
        return _nchw_norm_name(cls) or issubclass(cls, nn.GroupNorm)
    return any(_nchw_norm_name(type(m)) for name, m in model.named_modules() if not _in_patch_embed(name))


def _in_patch_embed(name: str) -> bool:
    """A hybrid ViT's embedding backbone (HybridEmbed, MobileCLIP's conv stem) is not built by
    the ViT's norm_layer: vit_base_mci_224's BatchNorm2d stem made the zoo offer its token
    blocks 'layernorm2d' (shard 11)."""
    return name == "patch_embed" or name.startswith("patch_embed.")


def _picked_values(probe_rule: rules.KwargProbe, model: nn.Module, source: str, default: Any) -> list:
    value = probe_rule.values[0] if probe_rule.values else None
    present = {type(m) for m in model.modules()}
    if value == "pick_flip":
        return [not default] if isinstance(default, bool) else []
    if value == "pick_literals":
        return sorted(literals(source, (probe_rule.name,)) - {default if isinstance(default, str) else ""})
    if value == "pick_act":
        classes = _resolved_classes("act", rules.ACT_CHOICES)
        return [n for n, c in classes.items() if c not in present][:rules.PICK_LIMIT]
    if value == "pick_norm":
        choices = rules.NORM_CHOICES_2D if _norm_over_channels_first(model, default) else rules.NORM_CHOICES_LAST
        classes = _resolved_classes("norm", choices)
        return [n for n, c in classes.items() if c not in present][:rules.PICK_LIMIT]
    return list(probe_rule.values)


def _case_id(name: str, value: Any) -> str:
    return f"{name}_{value}"


def discover(model_name: str, model: nn.Module) -> Capabilities:
    """Capabilities of one model, given its default build on the meta device."""
    broken: dict[str, str] = {}
    cls = type(model)
    params = constructor_params(cls)
    timm_classes = [c for c in cls.__mro__ if c.__module__.startswith("timm")]
    source = "".join(map(_class_source, timm_classes)) + _module_source(build.entrypoint_module(model_name))
    default_pool = heads.current_pool_type(model)
    default_sig = heads.pool_signature(model)

    pools, attn, ignored = [], [], []
    if _has_attn_pool(model):
        attn.append(default_pool if default_pool is not None else "")
    for pool in pool_candidates(model_name, model):
        if pool == default_pool or pool == "":
            continue
        result = probe(model_name, {rules.POOL_KWARG: pool})
        if result.status == "rejected":
            continue
        if result.status == "broken":
            broken[f"global_pool_{pool}"] = result.message
        elif (default_pool is not None and heads.current_pool_type(result.model) == default_pool
              and heads.pool_signature(result.model) == default_sig):
            ignored.append(pool)
            continue
        pools.append(pool)
        if result.model is not None and _has_attn_pool(result.model):
            attn.append(pool)
    unpooled = probe(model_name, {"num_classes": 0, rules.POOL_KWARG: ""}).status != "rejected"

    head_kwargs: dict[str, list] = {}
    for name in _head_kwarg_names(params):
        for value in _head_values(name, params[name].default, source):
            result = probe(model_name, {name: value})
            if result.status == "broken":
                broken[_case_id(name, value)] = result.message
            if result.status != "rejected":
                head_kwargs.setdefault(name, []).append(value)

    ctor: dict[str, dict] = {}
    for rule in rules.KWARG_PROBES:
        if rule.name not in params:
            continue
        for value in _picked_values(rule, model, source, params[rule.name].default):
            for companion in rule.companions:
                kwargs = {rule.name: value, **companion}
                result = probe(model_name, kwargs)
                if result.status == "rejected":
                    continue
                if result.status == "broken":
                    broken[_case_id(rule.name, value)] = result.message
                ctor[_case_id(rule.name, value)] = kwargs
                break

    cfg = build.pretrained_cfg(model_name)
    in_chans = ()
    if cfg.get("first_conv"):
        in_chans = tuple(c for c in IN_CHANS_PROBES if _accepts(model_name, {"in_chans": c}, broken))
    _, captured = entry_kwargs(model_name)
    return Capabilities(
        default_pool=default_pool, pools=tuple(pools), unpooled=unpooled, attn_pools=tuple(attn),
        ignored_pools=tuple(ignored), head_kwargs=head_kwargs, ctor_kwargs=ctor, in_chans=in_chans,
        entry_kwargs=tuple(sorted(captured)), num_prefix_tokens=_int_or_none(getattr(model, "num_prefix_tokens", None)),
        fixed_input_size=bool(cfg.get("fixed_input_size")), broken=broken)


def _accepts(model_name: str, kwargs: dict, broken: dict) -> bool:
    result = probe(model_name, kwargs)
    if result.status == "broken":
        broken[_case_id(*next(iter(kwargs.items())))] = result.message
    return result.status != "rejected"


def _has_attn_pool(model: nn.Module) -> bool:
    return getattr(model, "attn_pool", None) is not None or any(
        "AttentionPool" in type(m).__name__ for m in model.modules())


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def gather(model_name: str) -> Capabilities:
    """Discover from a fresh default build on the meta device; a model that does not build
    there has no capability (its create check reports why)."""
    try:
        model = build.create(model_name, device="meta")
    except Exception as exc:  # noqa: BLE001 - recorded; the create check reports it properly
        return Capabilities(error=f"{type(exc).__name__}: {exc}"[:300])
    return discover(model_name, model)


def capabilities_for(model_name: str, cache_get: Callable | None = None,
                     cache_set: Callable | None = None) -> Capabilities:
    """Capabilities from the cache (pytest's config.cache in practice) or freshly gathered."""
    key = cache_key(model_name, CACHE_KIND)
    if cache_get is not None:
        cached = cache_get(key, None)
        if cached:
            return Capabilities.from_json(cached)
    caps = gather(model_name)
    if cache_set is not None:
        cache_set(key, caps.to_json())
    return caps
