"""Golden outputs: what each model computes with the harness's deterministic weights on
its seeded input, recorded once and compared on every later run.

One safetensors file per model, ``<golden-dir>/outputs/<model>.safetensors`` (the layout
does not depend on the timm version, so old and new releases compare against the same
file). It holds three outputs, each the float64 reference rounded to float32:

- ``logits``: ``forward_head(forward_features(x))``, (B, num_classes);
- ``pre_logits``: ``forward_head(..., pre_logits=True)``, (B, num_features), sketched as
  the features below when wider than SKETCH_DIM (8.9 MB over the zoo as float32, 1 MB
  sketched); omitted when it equals the logits (models built with num_classes=0);
- ``features``: ``forward_features(x)`` reduced to (B, SKETCH_DIM) by a count sketch: every
  element goes to one of SKETCH_DIM buckets with a random sign, both fixed by a seed and
  the feature size. It is independent of the layout (NCHW, NHWC, tokens), linear, and
  any change to any feature element moves a bucket; the full shape is kept in metadata;

and ``bn_stats``: the BN running statistics the record used, calibrated on the golden input
when recording (drawn statistics drive deep nets to magnitudes where the budget is
meaningless) and *set from the file* when comparing, like a trained checkpoint's: a candidate
recalibrated on its own activations would normalize away a change made before any BN. One
mean and one variance per BN layer (the layer's average over its channels, set in every
channel before the reference is computed, so the record reproduces exactly): per-channel
statistics are 171 MB in float32 over the zoo's 679 numeric BN models, per-layer ones 0.4
MB, and the layer statistic keeps every layer's scale where drawn statistics let activations
grow. Where that leaves the model too noisy for the noise gate (levit_128s among the smoke
models: 4% own error; many EfficientNets), finer forms follow (``bn_form``: 'layer',
'q8mixed', 'q8', 'channel' or 'float32', see BN_FORMS); the keys and channel counts, in order, are in
the metadata (``bn_keys``).

A model whose own float32 error is over the gate at every form is compared in float64
(``compare_dtype``): its candidate runs in float64 and the noise is the float32 rounding of the
stored reference (``err64``); its BN form is chosen by float64_form.

Why float64 rounded to float32: the reference must be more exact than the float32 run it
judges; rounding it to float32 costs half an ulp, far below any model's own float32 error
(and covered by the magnitude floor), and halves the size. float16 storage would not do:
its 1e-3 resolution is the size of the changes golden must catch.

Metadata (the safetensors header, plain JSON at the start of the file): timm, torch,
device, dtype, input size, parameter count, the state_dict layout signature (sha256 of the
sorted key:shape lines) and the layout itself (zlib+base64, for naming changed keys), and
``err32``: per key, max |float32 output - float64 output| measured when recording (and
``err_bf16`` / ``err_fp16``, the same under autocast, the scale of the autocast profiles). That
error is the model's own numerical noise; a later float32 result is accepted when its
error against the reference stays within a small multiple of it (the rule PyTorch's
dynamo accuracy checks use: harness.checks.numerics.error_budget).
"""
from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from harness.checks.numerics import (batchnorm_statistics, calibrate_batchnorm, error_budget,
                                     set_batchnorm_statistics)
from harness.models import build
from harness.registry.tolerances import Tolerance, golden_max_noise, golden_tolerance
from harness.weights.deterministic import BATCH_SIZE, fill_deterministic, make_input, seed_for, single_thread

FORMAT = "harness-golden/3"   # /2: calibrated BN statistics stored; /3: one statistic per BN layer
SKETCH_DIM = 128
KEYS = ("logits", "pre_logits", "features")
SUBDIR = "outputs"


class GoldenFileError(Exception):
    """A golden file that is missing, unreadable or not a harness golden file."""


class GoldenNoiseError(AssertionError):
    """A model too noisy in float32 for its golden budget to catch a small change."""


class GoldenChangedError(AssertionError):
    """A re-recording whose values changed, without --accept-golden-changes."""


# ---------------------------------------------------------------- tolerances

# Tolerances by "<device>-<precision>" and per-model overrides: registry.tolerances.
PRECISIONS = ("float32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------- computing outputs

def layout_lines(model: nn.Module) -> list[str]:
    return sorted(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in model.state_dict().items())


def layout_signature(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _pack(lines: list[str]) -> str:
    return base64.b64encode(zlib.compress("\n".join(lines).encode(), 9)).decode()


def _unpack(text: str) -> list[str]:
    return zlib.decompress(base64.b64decode(text)).decode().split("\n") if text else []


def sketch(features: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, SKETCH_DIM) float64 count sketch with buckets and signs fixed by the
    per-sample size, computed in float64 so it adds no rounding of its own."""
    flat = features.detach().reshape(features.shape[0], -1).to(device="cpu", dtype=torch.float64)
    size = flat.shape[1]
    gen = torch.Generator().manual_seed(seed_for("golden-sketch", str(size), str(SKETCH_DIM)))
    bucket = torch.randint(0, SKETCH_DIM, (size,), generator=gen)
    sign = torch.randint(0, 2, (size,), generator=gen).to(torch.float64) * 2 - 1
    out = torch.zeros(flat.shape[0], SKETCH_DIM, dtype=torch.float64)
    return out.index_add_(1, bucket, flat * sign)


def _tensor(out, what: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return torch.cat([o.reshape(o.shape[0], -1) for o in out], dim=1)
    raise AssertionError(f"{what} returned {type(out).__name__}, expected tensor(s)")


def forward_outputs(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """{'logits', 'pre_logits', 'features' (sketched)} as float64 CPU tensors, and the
    full features shape. One forward: logits and pre-logits both come from the features."""
    threads = single_thread() if x.device.type == "cpu" else contextlib.nullcontext()
    with torch.inference_mode(), threads:
        feats = model.forward_features(x)
        logits = _tensor(model.forward_head(feats), "forward_head")
        pre = _tensor(model.forward_head(feats, pre_logits=True), "forward_head(pre_logits=True)")
        feats_t = _tensor(feats, "forward_features")
        pre = sketch(pre) if pre[0].numel() > SKETCH_DIM else pre.detach().cpu().double()
        out = {"logits": logits.detach().cpu().double(), "pre_logits": pre,
               "features": sketch(feats_t)}
    return out, tuple(feats_t.shape)


@contextlib.contextmanager
def precision_context(device: str, precision: str):
    """float32 with TF32 off on CUDA (its 10-bit mantissa is not float32), or autocast."""
    if precision == "float32":
        if device.startswith("cuda"):
            old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        else:
            yield
        return
    with torch.autocast(device_type=device.split(":")[0], dtype=_AUTOCAST[precision]):
        yield


def _built(model_name: str, device: str) -> nn.Module:
    return fill_deterministic(build.create(model_name, device=device), model_name)


def _calibrated(model_name: str, x: torch.Tensor) -> nn.Module:
    """The deterministic model with BN statistics calibrated on the golden input (as the
    reparam and onnx checks do), for recording: drawn statistics unrelated to the activations
    make deep nets run at huge magnitudes (NextViT's logits reached 6.5e4, its float32 error
    ~300), where a budget scaled by the model's own error could not fail. Calibrated in
    float32 on one thread (TF32 off on CUDA). The statistics are then stored with the record
    and set, not recalibrated, when comparing, as a trained checkpoint's would be: a candidate
    recalibrated on its own activations would normalize away any change made before a BN.
    Without the variance floor of the other checks: the zoo's records were made before it, so
    with it every re-record would report CHANGED; golden's noise gate and BN forms already
    keep such a model sane (rexnet_130's per-layer record: own error 4e-6 of its logits)."""
    model = _built(model_name, str(x.device))
    threads = single_thread() if x.device.type == "cpu" else contextlib.nullcontext()
    with threads, precision_context(x.device.type, "float32"):
        calibrate_batchnorm(model, x, var_floor=0.0)
    return model


# How BN statistics are stored, cheapest first; a record takes the first whose model passes
# the noise gate. 'layer': one value per statistic (the layer's mean over its channels, set in
# every channel); 'q8mixed': per layer where the layer's channels agree (variances within
# MIXED_OCTAVES octaves, means within MIXED_SPREAD of the layer's standard deviation), else every
# channel in 8 bits as 'q8'; 'q8': every channel in 8 bits (a variance in 1/16 octaves around the
# layer's geometric mean, +-8 octaves; a mean in steps of 1/16 of the spread of the layer's
# means, +-8 spreads), 2 bytes per channel; 'channel': every channel in bfloat16, 4 bytes;
# 'float32': every channel exactly as calibrated, 8 bytes (halonet_h1: bfloat16 statistics
# leave its logits at 7e6, the calibrated ones at 2e3). The
# record sets the decoded values before computing the reference (decoded by the decoder a
# comparison uses), so a comparison reproduces the record exactly.
BN_FORMS = ("layer", "q8mixed", "q8", "channel", "float32")
MIXED_OCTAVES, MIXED_SPREAD = 1.0, 0.25
FLOAT64_FORM_SLACK = 20.0  # a record compared in float64 takes the cheapest form this close to the tamest
BN_TENSORS = ("bn_stats", "bn_scale")
_QUANTIZED = ("q8mixed", "q8")  # the forms with a per-statistic (center, step) in bn_scale
_PLAIN = {"channel": torch.bfloat16, "float32": torch.float32}  # every channel, in this dtype
_Q8_STEPS = 16  # codes per octave (variances) / per spread (means)


def encode_statistics(stats: dict[str, torch.Tensor], form: str) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors to store, the keys with their channel counts) for ``stats`` in ``form``."""
    keys = sorted(stats)
    if not keys:
        return {}, ""
    text = _pack([f"{k}:{stats[k].numel()}" for k in keys])
    flat = [stats[k].detach().cpu().double().reshape(-1) for k in keys]
    if form == "layer":
        return {"bn_stats": torch.tensor([v.mean().item() for v in flat], dtype=torch.float32)}, text
    if form in _PLAIN:
        return {"bn_stats": torch.cat(flat).to(_PLAIN[form])}, text
    scales, codes = [], []
    by_key = dict(zip(keys, flat))
    for key, v in zip(keys, flat):
        if not _per_channel(key, form, by_key):
            scales.append((torch.tensor(v.mean().item(), dtype=torch.float32).item(), 0.0))
            continue
        if key.endswith("running_var"):  # around the geometric mean: variances spread over octaves
            center = torch.tensor(v.clamp_min(1e-30).log().mean().exp().item(), dtype=torch.float32).double()
            step = torch.tensor(1.0 / _Q8_STEPS, dtype=torch.float64)
            code = (torch.log2(v.clamp_min(1e-30) / center) / step).round()
        else:
            center = torch.tensor(v.mean().item(), dtype=torch.float32).double()
            spread = v.std().item() / _Q8_STEPS if v.numel() > 1 else 0.0
            step = torch.tensor(spread if spread > 0 else 1.0, dtype=torch.float32).double()
            code = ((v - center) / step).round()
        scales.append((center.item(), step.item()))
        codes.append(code.clamp(-128, 127).to(torch.int64) + 128)
    return {"bn_stats": torch.cat(codes).to(torch.uint8), "bn_scale": torch.tensor(scales, dtype=torch.float32)}, text


def decode_statistics(stored: dict[str, torch.Tensor], keys: str, form: str) -> dict[str, torch.Tensor]:
    """The statistics (float32, one tensor per key) that ``encode_statistics`` stored."""
    pairs = [(k, int(n)) for k, n in (line.rsplit(":", 1) for line in _unpack(keys))]
    if not pairs:
        return {}
    values, counts = stored.get("bn_stats", torch.zeros(0)), [n for _, n in pairs]
    scale = stored.get("bn_scale", torch.zeros(0)).double()
    if form in _QUANTIZED and tuple(scale.shape) != (len(pairs), 2):
        raise ValueError(f"bn_scale has shape {tuple(scale.shape)} for {len(pairs)} keys")
    coded = [n if form in _QUANTIZED and step > 0 else 0 for (_, n), (_, step) in zip(pairs, scale.tolist())]
    want = {"layer": len(pairs), **dict.fromkeys(_PLAIN, sum(counts)), **dict.fromkeys(_QUANTIZED, sum(coded))}.get(form)
    if want is None or values.numel() != want:
        raise ValueError(f"bn_stats ({form!r}) holds {values.numel()} values for {len(pairs)} keys")
    if form == "layer":
        return {k: torch.full((n,), v.item()) for (k, n), v in zip(pairs, values.float())}
    if form in _PLAIN:
        return {k: c.clone() for (k, _), c in zip(pairs, values.float().split(counts))}
    out = {}
    for (key, n), code, (center, step) in zip(pairs, (values.to(torch.int64) - 128).double().split(coded), scale):
        if step == 0:
            out[key] = torch.full((n,), center.item())
        else:
            out[key] = (center * torch.pow(2.0, code * step) if key.endswith("running_var")
                        else center + step * code).float()
    return out


def _per_channel(key: str, form: str, stats: dict[str, torch.Tensor]) -> bool:
    """Whether a quantized form stores this statistic per channel (its step is then > 0;
    a statistic stored per layer has step 0)."""
    if form == "q8":
        return True
    var = stats.get(key.rsplit(".", 1)[0] + ".running_var")
    if var is None or var.numel() < 2:
        return False
    if key.endswith("running_var"):
        positive = var.clamp_min(1e-30)
        return (positive.max() / positive.min()).log2().item() > MIXED_OCTAVES
    return stats[key].std().item() > MIXED_SPREAD * var.mean().clamp_min(1e-30).sqrt().item()


def _encoded(stats: dict[str, torch.Tensor], form: str) -> tuple[tuple[dict[str, torch.Tensor], str],
                                                                  dict[str, torch.Tensor]]:
    """(the encoding, the decoded statistics: what a comparison reads back). The record keeps
    the encoding itself, since re-encoding decoded 8-bit values need not give the same bits."""
    encoded = encode_statistics(stats, form)
    return encoded, decode_statistics(*encoded, form)


@dataclass
class Golden:
    """A recorded reference: tensors (float32) and metadata."""

    model: str
    tensors: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    bn_stats: dict[str, torch.Tensor] = field(default_factory=dict)  # the calibrated BN statistics
    bn_encoded: tuple[dict[str, torch.Tensor], str] | None = None    # as stored (encode_statistics)

    @property
    def err32(self) -> dict[str, float]:
        return self.meta.get("err32", {})

    @property
    def compare_dtype(self) -> str:
        """'float64' for a model whose own float32 error is over the noise gate: its candidate
        runs in float64, judged by the float32 rounding of the stored reference (err64)."""
        return self.meta.get("compare_dtype", "float32")

    def noise(self, precision: str) -> dict[str, float]:
        """The model's own error per key at ``precision`` (float32 or float64, or bf16/fp16
        autocast), measured against the float64 reference when recording."""
        if precision == "float32":
            return self.err32
        return self.meta.get("err64" if precision == "float64" else f"err_{precision}", {})

    @property
    def layout(self) -> list[str]:
        return _unpack(self.meta.get("layout", ""))


def _reference_and_noise(model: nn.Module, x: torch.Tensor, model_name: str, device: str):
    """(float64 reference, float32 outputs, features shape, relative float32 noise per key)."""
    model64 = copy.deepcopy(model).double()  # before any forward: caches stay float64
    ref, feat_shape = forward_outputs(model64, x.double())
    del model64
    with precision_context(device, "float32"):
        out32, _ = forward_outputs(model, x)
    for key, value in ref.items():
        if not torch.isfinite(value).all():
            raise AssertionError(f"{model_name}: float64 {key} has non-finite values; nothing to record")
    if ref["pre_logits"].shape == ref["logits"].shape and torch.equal(ref["pre_logits"], ref["logits"]):  # not sketched
        del ref["pre_logits"], out32["pre_logits"]
    noisy = {k: (out32[k] - ref[k]).abs().max().item() / max(ref[k].abs().max().item(), 1e-30) for k in ref}
    return ref, out32, feat_shape, noisy


def float64_form(magnitude_by_form: dict[str, float]) -> str:
    """The BN form of a record compared in float64: the cheapest whose outputs' magnitude
    (max |reference| over the outputs) is within FLOAT64_FORM_SLACK of the smallest any form
    gives. Float64 makes the float32 noise harmless, not what causes it: statistics that leave
    activations at absurd magnitudes saturate gates and softmaxes. seresnet152 with per-layer
    statistics (logits ~4e5) does not see a 1e-3 change of its last SE block even in float64;
    with 8-bit per-channel statistics (logits ~3) it sees it at 1,150 x the budget. The float32
    noise is no guide: botnet50ts_256's is 2e-4 per layer at logits 6e4 and 3e-4 at logits 17."""
    tamest = min(magnitude_by_form.values())
    return next(f for f in BN_FORMS if f in magnitude_by_form
                and magnitude_by_form[f] <= FLOAT64_FORM_SLACK * tamest)


def record(model_name: str, input_size: tuple[int, ...], device: str = "cpu") -> Golden:
    """Run the deterministic model in float32 and float64; the float64 outputs are the
    reference, their distance to the float32 outputs the noise scale per key. BN statistics
    take the cheapest of BN_FORMS at which the model's noise passes the gate."""
    x = make_input(model_name, input_size, BATCH_SIZE, device)
    model = _calibrated(model_name, x)
    lines = layout_lines(model)
    calibrated = batchnorm_statistics(model)
    limit = golden_max_noise(model_name)
    tried: dict[str, tuple] = {}  # form -> (encoded, stats, ref, out32, features shape)
    for form in BN_FORMS if calibrated else BN_FORMS[:1]:
        encoded, stats = _encoded(calibrated, form)
        set_batchnorm_statistics(model, stats)
        ref, out32, feat_shape, noisy = _reference_and_noise(model, x, model_name, device)
        tried[form] = (encoded, stats, ref, out32, feat_shape)
        too_noisy = {k: r for k, r in noisy.items() if r > limit}
        if not too_noisy:
            break
    float64 = {}
    if too_noisy:  # float32 cannot judge this model: it is compared in float64
        magnitudes = {f: max(v.abs().max().item() for v in t[2].values()) for f, t in tried.items()}
        form = float64_form(magnitudes)
        encoded, stats, ref, out32, feat_shape = tried[form]
        set_batchnorm_statistics(model, stats)  # the autocast runs below use the chosen form
        err64 = {k: (ref[k].float().double() - ref[k]).abs().max().item() for k in ref}  # the stored rounding
        still = {k: e / max(ref[k].abs().max().item(), 1e-30) for k, e in err64.items()}
        if any(r > limit for r in still.values()):
            raise GoldenNoiseError(
                f"{model_name}: refusing to record golden outputs: its own float32 error is "
                + ", ".join(f"{k} {r:.3g}" for k, r in too_noisy.items())
                + f" of max|reference| (limit {limit:g}), and even the float32 rounding of its float64 "
                f"reference is over the limit. Register a GoldenNoiseAllowance with the reason in "
                f"harness/registry/tolerances.py if this noise is the model's own")
        float64 = {"compare_dtype": "float64", "err64": err64, "form_magnitudes": magnitudes}
    err32 = {k: (out32[k] - ref[k]).abs().max().item() for k in ref}
    autocast_noise = {}
    for precision in _AUTOCAST:  # the model's own autocast noise on this device: the autocast budgets' scale
        with precision_context(device, precision):
            out, _ = forward_outputs(model, x)
        autocast_noise[f"err_{precision}"] = {k: (out[k] - ref[k]).abs().max().item() for k in ref}
    meta = {
        "format": FORMAT, "model": model_name, "timm": build.timm_version(), "torch": torch.__version__,
        "device": device, "dtype": "float64 reference stored as float32; err32 from a float32 run",
        "input_size": list(input_size), "batch_size": BATCH_SIZE, "param_count": build.param_count(model),
        "features_shape": list(feat_shape), "sketch_dim": SKETCH_DIM, "err32": err32, **autocast_noise,
        "layout_sha": layout_signature(lines), "layout": _pack(lines), "bn_form": form, **float64,
    }
    return Golden(model_name, {k: v.float().contiguous() for k, v in ref.items()}, meta, stats, encoded)


# ---------------------------------------------------------------- files

def golden_path(golden_dir: Path, model_name: str) -> Path:
    return Path(golden_dir) / SUBDIR / f"{model_name}.safetensors"


def record_command(model_name: str, golden_dir: Path | None = None) -> str:
    extra = f" --golden-dir {golden_dir}" if golden_dir is not None and Path(golden_dir) != Path("golden") else ""
    return f"python -m pytest suites -m golden --models '{model_name}' --update-golden{extra}"


def save(golden: Golden, path: Path) -> None:
    """Atomically: written to a temporary file in the same folder, then renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bn_tensors, bn_keys = golden.bn_encoded or encode_statistics(golden.bn_stats, golden.meta.get("bn_form", "layer"))
    meta = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in {**golden.meta, "bn_keys": bn_keys}.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({**golden.tensors, **bn_tensors}, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; golden files are shared data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_JSON_FIELDS = ("input_size", "batch_size", "param_count", "features_shape", "sketch_dim", "err32", "err64",
                "form_magnitudes", "err_bf16", "err_fp16")


def load(path: Path, model_name: str, golden_dir: Path | None = None) -> Golden:
    """The golden record, or GoldenFileError saying what is wrong and how to re-record."""
    if not path.exists():
        raise GoldenFileError(f"no golden outputs for {model_name}: {path} does not exist. Record them with:\n"
                              f"  {record_command(model_name, golden_dir)}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            stored = {k: f.get_tensor(k) for k in f.keys()}
        meta = {k: json.loads(v) if k in _JSON_FIELDS else v for k, v in raw.items()}
        tensors = {k: v for k, v in stored.items() if k not in BN_TENSORS}
        encoded = ({k: v for k, v in stored.items() if k in BN_TENSORS}, meta.get("bn_keys", ""))
        bn_stats = decode_statistics(*encoded, meta.get("bn_form", ""))
        if meta.get("format") != FORMAT or "logits" not in tensors or \
                any(f"err_{p}" not in meta for p in _AUTOCAST) or "err32" not in meta:
            raise ValueError(f"format {meta.get('format')!r}, tensors {sorted(tensors)[:6]}")
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise GoldenFileError(f"golden file {path} is corrupt or not a {FORMAT} file "
                              f"({type(exc).__name__}: {str(exc)[:200]}). Re-record it with:\n"
                              f"  {record_command(model_name, golden_dir)}") from None
    return Golden(model_name, tensors, meta, bn_stats, encoded)


# ---------------------------------------------------------------- comparing

@dataclass(frozen=True)
class KeyResult:
    key: str
    max_abs: float
    max_rel: float
    budget: float
    noise: float             # the model's own error at the compared precision, when recorded
    argmax_agree: tuple[int, int] | None = None  # (agreeing rows, rows) for logits
    shape: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (actual, golden) on mismatch
    precision: str = "float32"

    @property
    def ok(self) -> bool:
        return self.shape is None and self.max_abs <= self.budget

    def describe(self) -> str:
        if self.shape is not None:
            return f"{self.key}: shape {self.shape[0]} vs golden {self.shape[1]}"
        agree = f", argmax agrees {self.argmax_agree[0]}/{self.argmax_agree[1]}" if self.argmax_agree else ""
        ratio = self.max_abs / self.noise if self.noise else float("inf")
        return (f"{self.key}: max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g} (budget "
                f"{self.budget:.3g}; {ratio:.3g} x its own {self.precision} error {self.noise:.3g}){agree}")


def compare_key(key: str, actual: torch.Tensor, ref: torch.Tensor, noise: float, tol: Tolerance,
                precision: str = "float32") -> KeyResult:
    a, e = actual.double().cpu(), ref.double().cpu()
    if tuple(a.shape) != tuple(e.shape):
        return KeyResult(key, float("inf"), float("inf"), 0.0, noise, shape=(tuple(a.shape), tuple(e.shape)),
                         precision=precision)
    diff = (a - e).abs()
    diff = torch.where(torch.isfinite(a), diff, torch.full_like(diff, float("inf")))
    max_abs = diff.max().item() if diff.numel() else 0.0
    max_rel = (diff / e.abs().clamp_min(1e-12)).max().item() if diff.numel() else 0.0
    agree = None
    if key == "logits" and a.dim() == 2 and a.shape[1] > 1:
        agree = (int((a.argmax(1) == e.argmax(1)).sum()), a.shape[0])
    ref_max = e.abs().max().item() if e.numel() else 0.0
    return KeyResult(key, max_abs, max_rel, error_budget(tol, noise, ref_max), noise, agree, precision=precision)


@dataclass(frozen=True)
class Comparison:
    model: str
    profile: str
    keys: tuple[KeyResult, ...]
    layout_changes: tuple[str, ...]   # empty: the state_dict layout is the recorded one
    other_changes: tuple[str, ...]    # forward_features shape
    notes: tuple[str, ...] = ()       # shown, not failing: the default input size moved (the
                                      # comparison runs at the recorded size)

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.keys) and not self.layout_changes and not self.other_changes

    def message(self) -> str:
        bad = [k for k in self.keys if not k.ok]
        if self.layout_changes:
            head = (f"golden mismatch for {self.model} [{self.profile}]: the state_dict layout changed "
                    f"({len(self.layout_changes)} differences: {'; '.join(self.layout_changes[:8])}"
                    f"{' ...' if len(self.layout_changes) > 8 else ''})")
            head += "; outputs " + ("also differ" if bad else "are still within tolerance")
        else:
            head = (f"golden mismatch for {self.model} [{self.profile}]: state_dict layout unchanged, "
                    f"only the numbers differ" if bad else
                    f"golden mismatch for {self.model} [{self.profile}]")
        lines = [head] + [f"  {c}" for c in self.other_changes + self.notes]
        lines += [f"  {'FAIL' if not k.ok else 'ok  '} {k.describe()}" for k in self.keys]
        return "\n".join(lines)


def layout_diff(actual: list[str], expected: list[str]) -> list[str]:
    a = dict(line.rsplit(":", 1) for line in actual)
    e = dict(line.rsplit(":", 1) for line in expected)
    out = [f"missing {k}" for k in sorted(set(e) - set(a))] + [f"unexpected {k}" for k in sorted(set(a) - set(e))]
    out += [f"{k} shape {a[k]} (golden {e[k]})" for k in sorted(set(a) & set(e)) if a[k] != e[k]]
    return out


def run_candidate(model_name: str, input_size: tuple[int, ...], device: str, precision: str,
                  bn_stats: dict[str, torch.Tensor] | None = None
                  ) -> tuple[dict[str, torch.Tensor], tuple[int, ...], list[str]]:
    """The candidate's outputs: the deterministic model with the recorded BN statistics
    (a statistic the record lacks keeps its drawn value: the layout changed, and says so)."""
    x = make_input(model_name, input_size, BATCH_SIZE, device)
    model = _built(model_name, device)
    set_batchnorm_statistics(model, bn_stats or {})
    lines = layout_lines(model)
    if precision == "float64":
        model, x = model.double(), x.double()
    with precision_context(device, "float32" if precision == "float64" else precision):
        out, feat_shape = forward_outputs(model, x)
    return out, feat_shape, lines


def compare(golden: Golden, outputs: dict[str, torch.Tensor], features_shape: tuple[int, ...],
            layout: list[str], profile: str, input_size: tuple[int, ...]) -> Comparison:
    meta = golden.meta
    precision = profile.split("-", 1)[1]
    noise = golden.noise(precision)
    results = []
    for key, ref in golden.tensors.items():
        tol = golden_tolerance(golden.model, profile, key)
        if key not in outputs:
            results.append(KeyResult(key, float("inf"), float("inf"), 0.0, 0.0, shape=((), tuple(ref.shape)),
                                     precision=precision))
            continue
        results.append(compare_key(key, outputs[key], ref, float(noise.get(key, 0.0)), tol, precision))
    layout_changes = () if layout_signature(layout) == meta.get("layout_sha") else \
        tuple(layout_diff(layout, golden.layout) or [f"signature {layout_signature(layout)} vs {meta.get('layout_sha')}"])
    other, notes = [], []
    if list(input_size) != list(meta.get("input_size", input_size)):
        notes.append(f"note: the model's input size is now {tuple(input_size)}; compared at the recorded "
                     f"{tuple(meta['input_size'])}")
    if list(features_shape) != list(meta.get("features_shape", features_shape)):
        other.append(f"forward_features shape {tuple(features_shape)} (golden {tuple(meta['features_shape'])})")
    return Comparison(golden.model, profile, tuple(results), layout_changes, tuple(other), tuple(notes))


def check_golden(model_name: str, input_size: tuple[int, ...], golden_dir: Path, device: str = "cpu",
                 precision: str = "float32") -> Comparison:
    """Compare the importable timm's outputs with the recorded golden; AssertionError with
    the numbers (and whether the state_dict layout changed) on a mismatch."""
    golden = load(golden_path(golden_dir, model_name), model_name, golden_dir)
    if precision == "float32":
        precision = golden.compare_dtype
    outputs, feat_shape, layout = run_candidate(model_name, tuple(golden.meta.get("input_size", input_size)),
                                                device, precision, golden.bn_stats)
    result = compare(golden, outputs, feat_shape, layout, f"{device.split(':')[0]}-{precision}", input_size)
    if not result.ok:
        raise AssertionError(result.message())
    return result


def update_golden(model_name: str, input_size: tuple[int, ...], golden_dir: Path, device: str = "cpu",
                  accept_changes: bool = False) -> str:
    """Record (atomically) and return one summary line: new, unchanged within noise, or
    what changed and by how much. A record whose values CHANGED is written only with
    ``accept_changes`` (``--accept-golden-changes``): otherwise GoldenChangedError says what
    changed, and the old file stays."""
    path = golden_path(golden_dir, model_name)
    new = record(model_name, input_size, device)
    try:
        old = load(path, model_name, golden_dir) if path.exists() else None
    except GoldenFileError:
        old = None
        status = "replaced an unreadable file"
    else:
        status = "new"
    if old is not None:
        feat_shape = tuple(new.meta["features_shape"])
        cmp = compare(old, {k: v.double() for k, v in new.tensors.items()}, feat_shape, new.layout,
                      f"cpu-{old.compare_dtype}", tuple(new.meta["input_size"]))
        missing = sorted(set(old.tensors) ^ set(new.tensors))
        if cmp.ok and not missing:
            status = "unchanged within noise (" + ", ".join(
                f"{k.key} {k.max_abs:.2g}" for k in cmp.keys) + ")"
        else:
            parts = (["layout changed: " + "; ".join(cmp.layout_changes[:3])] if cmp.layout_changes else [])
            parts += list(cmp.other_changes) + [k.describe() for k in cmp.keys if not k.ok]
            parts += [f"keys changed: {', '.join(missing)}"] if missing else []
            status = "CHANGED: " + " | ".join(parts)
            if not accept_changes:
                raise GoldenChangedError(f"{model_name}: not re-recorded, the golden values {status}. Review, then "
                                         f"re-record with --accept-golden-changes")
    save(new, path)
    return f"{model_name}: {status}"
