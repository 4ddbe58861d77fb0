"""Writers: a deterministic timm model saved in a checkpoint family's native layout.

Each writer is the inverse of timm's conversion for its family, written from the
family's layout (our own tables below), never by calling timm's converter, so the file
layout is the family's whatever timm release reads it. OpenAI and OpenCLIP files are
state_dicts of a real ``open_clip`` model built with ``pretrained=None`` (the layout is
open_clip's, not a guess) whose vision tower carries the timm model's values.

A layout may not carry every value of a timm model (OpenCLIP has no head bias, OpenAI
stores most matrices in fp16). A writer first projects the model onto what its layout
can carry, in place, so "the loaded model equals the source" is exact: call
``write_family(family, model, name, directory)`` and use the model afterwards as the source.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from harness.registry.checkpoint_families import CHECKPOINT_FAMILIES
from harness.weights import checkpoints
from harness.weights.deterministic import deterministic_value, fill_deterministic


class UnsupportedLayout(ValueError):
    """The model cannot be written in this family's layout (architecture mismatch)."""


def _sd(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def _assign(model: nn.Module, values: dict[str, torch.Tensor]) -> None:
    """Overwrite model tensors with the (representable) values the file carries."""
    sd = model.state_dict()
    for k, v in values.items():
        sd[k].copy_(v.to(sd[k].dtype))


def _torch_save(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


# --- timm native -------------------------------------------------------------------------

def write_timm(model: nn.Module, name: str, directory: Path) -> Path:
    return checkpoints.write_native_checkpoint(_sd(model), directory, "safetensors")


# --- OpenAI CLIP / OpenCLIP -----------------------------------------------------------------

# OpenAI CLIP key names (also open_clip's VisionTransformer) -> timm ViT key names.
OPENAI_VISUAL_SWAPS: tuple[tuple[str, str], ...] = (
    ("conv1", "patch_embed.proj"), ("positional_embedding", "pos_embed"),
    ("transformer.resblocks.", "blocks."), ("ln_pre", "norm_pre"), ("ln_post", "norm"), ("ln_", "norm"),
    ("in_proj_", "qkv."), ("out_proj", "proj"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"),
)
# OpenAI's convert_weights() stores these in fp16 (conv/linear/attention weights, projections).
OPENAI_FP16_SUFFIXES = ("conv1.weight", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias",
                        "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias", "visual.proj", "text_projection")


def _timm_key(visual_key: str) -> str:
    k = visual_key
    for old, new in OPENAI_VISUAL_SWAPS:
        k = k.replace(old, new)
    return {"proj": "head.weight", "class_embedding": "cls_token"}.get(k, k)


def _to_openai(timm_key: str, value: torch.Tensor) -> torch.Tensor:
    if timm_key == "head.weight":
        return value.t().contiguous()
    if timm_key in ("cls_token", "pos_embed"):
        return value.reshape(value.shape[-2:] if timm_key == "pos_embed" else value.shape[-1:]).clone()
    return value


def _open_clip_model(model: nn.Module):
    """An open_clip CLIP whose vision tower has the timm model's architecture; the text
    tower from the open_clip config with the same vision tower when one exists."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    pe = model.patch_embed
    width, depth = model.embed_dim, len(model.blocks)
    patch, image = pe.patch_size[0], pe.img_size[0]
    heads = model.blocks[0].attn.num_heads
    mlp_ratio = model.blocks[0].mlp.fc1.out_features / width
    quick_gelu = "quick" in type(model.blocks[0].mlp.act).__name__.lower()
    num_classes = getattr(model, "num_classes", 0)
    if not num_classes or not isinstance(model.head, nn.Linear) or getattr(model, "fc_norm", None) is not None \
            and not isinstance(model.fc_norm, nn.Identity):
        raise UnsupportedLayout("an OpenAI/OpenCLIP vision tower ends in a bias-free projection: the timm model "
                                "needs a Linear head, num_classes > 0 and no fc_norm")
    text_cfg = CLIPTextCfg(context_length=8, vocab_size=64, width=64, heads=1, layers=1)
    for arch in open_clip.list_models():
        cfg = open_clip.get_model_config(arch) or {}
        v = cfg.get("vision_cfg", {})
        if (v.get("width"), v.get("layers"), v.get("patch_size"), v.get("image_size")) == (width, depth, patch, image) \
                and "timm_model_name" not in v and cfg.get("embed_dim") == num_classes:
            text_cfg = CLIPTextCfg(**cfg["text_cfg"])
            break
    vision_cfg = CLIPVisionCfg(layers=depth, width=width, head_width=width // heads, mlp_ratio=mlp_ratio,
                               patch_size=patch, image_size=image)
    return CLIP(num_classes, vision_cfg, text_cfg, quick_gelu=quick_gelu).eval()


def open_clip_state_dict(model: nn.Module, name: str, fp16: bool = False) -> dict[str, torch.Tensor]:
    """The open_clip state_dict carrying the timm model's vision tower (in place: the timm
    model is projected onto what the layout carries)."""
    oc = _open_clip_model(model)
    fill_deterministic(oc, f"{name}/open_clip")  # text tower, logit scale: deterministic too
    timm_sd = _sd(model)
    out = {k: v.detach().clone() for k, v in oc.state_dict().items()}
    used, carried = set(), {}
    for key in out:
        if not key.startswith("visual."):
            continue
        tkey = _timm_key(key[len("visual."):])
        if tkey not in timm_sd:
            raise UnsupportedLayout(f"open_clip tensor {key} has no timm counterpart ({tkey})")
        value = _to_openai(tkey, timm_sd[tkey])
        if tuple(value.shape) != tuple(out[key].shape):
            raise UnsupportedLayout(f"{key}: open_clip shape {tuple(out[key].shape)} vs timm {tuple(value.shape)}")
        if fp16 and key.endswith(OPENAI_FP16_SUFFIXES):
            value = value.half()
        out[key] = value
        used.add(tkey)
    for key in out:
        if fp16 and not key.startswith("visual.") and key.endswith(OPENAI_FP16_SUFFIXES):
            out[key] = out[key].half()
    for key in out:  # what timm will read back, as timm float32 values
        if key.startswith("visual."):
            tkey = _timm_key(key[len("visual."):])
            carried[tkey] = out[key].float().t() if tkey == "head.weight" else out[key].float().reshape(timm_sd[tkey].shape)
    missing = set(timm_sd) - used - {"head.bias"}
    if missing:
        raise UnsupportedLayout(f"timm tensors the OpenAI/OpenCLIP layout cannot carry: {sorted(missing)[:8]}")
    carried["head.bias"] = torch.zeros_like(timm_sd["head.bias"])  # a CLIP projection has no bias
    _assign(model, carried)
    return out


def write_open_clip(model: nn.Module, name: str, directory: Path) -> Path:
    return _torch_save(open_clip_state_dict(model, name), directory / CHECKPOINT_FAMILIES["open_clip"].file_name)


def write_open_clip_ddp(model: nn.Module, name: str, directory: Path) -> Path:
    sd = {f"module.{k}": v for k, v in open_clip_state_dict(model, name).items()}
    return _torch_save({"epoch": 32, "name": name, "state_dict": sd}, directory / CHECKPOINT_FAMILIES["open_clip_ddp"].file_name)


def write_openai_clip(model: nn.Module, name: str, directory: Path) -> Path:
    sd = open_clip_state_dict(model, name, fp16=True)
    image = model.patch_embed.img_size[0]
    # OpenAI's model.state_dict() also holds these three (build_model() deletes them on load).
    sd.update(input_resolution=torch.tensor(image), context_length=torch.tensor(sd["positional_embedding"].shape[0]),
              vocab_size=torch.tensor(sd["token_embedding.weight"].shape[0]))
    return _torch_save(sd, directory / CHECKPOINT_FAMILIES["openai_clip"].file_name)


def write_open_clip_trunk(model: nn.Module, name: str, directory: Path) -> Path:
    """OpenCLIP with a timm trunk (EVA02-CLIP, ConvNeXt-CLIP): an open_clip CLIP whose
    TimmModel trunk open_clip builds itself (``timm_proj=None``: the trunk's head is the
    projection); the trunk's keys must be the timm model's own, and carry its values."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    arch = name.split(".", 1)[0]
    num_classes = getattr(model, "num_classes", 0)
    if not num_classes:
        raise UnsupportedLayout("an OpenCLIP timm trunk ends in the projection: num_classes must be > 0")
    text_cfg, pool = CLIPTextCfg(context_length=8, vocab_size=64, width=64, heads=1, layers=1), None
    for oc_arch in open_clip.list_models():
        cfg = open_clip.get_model_config(oc_arch) or {}
        v = cfg.get("vision_cfg", {})
        if v.get("timm_model_name") == arch and not v.get("timm_proj") and cfg.get("embed_dim") == num_classes \
                and not cfg.get("custom_text"):
            text_cfg, pool = CLIPTextCfg(**cfg["text_cfg"]), v.get("timm_pool")
            break
    pool = pool or getattr(model, "global_pool", "avg")
    vision_cfg = CLIPVisionCfg(timm_model_name=arch, timm_model_pretrained=False, timm_pool=pool, timm_proj=None,
                               image_size=tuple(model.pretrained_cfg.get("input_size", (3, 224, 224))[1:]))
    try:
        oc = CLIP(num_classes, vision_cfg, text_cfg).eval()
    except Exception as exc:  # noqa: BLE001 - the trunk cannot take this configuration
        raise UnsupportedLayout(f"open_clip cannot build a {arch} trunk: {exc}") from exc
    fill_deterministic(oc, f"{name}/open_clip")
    out = {k: v.detach().clone() for k, v in oc.state_dict().items()}
    timm_sd = _sd(model)
    trunk = {k[len("visual.trunk."):] for k in out if k.startswith("visual.trunk.")}
    if trunk != set(timm_sd):
        raise UnsupportedLayout(f"open_clip trunk keys differ from timm's: {sorted(trunk ^ set(timm_sd))[:8]}")
    for k, v in timm_sd.items():
        if tuple(out[f"visual.trunk.{k}"].shape) != tuple(v.shape):
            raise UnsupportedLayout(f"visual.trunk.{k}: open_clip shape {tuple(out[f'visual.trunk.{k}'].shape)} "
                                    f"vs timm {tuple(v.shape)}")
        out[f"visual.trunk.{k}"] = v
    return _torch_save(out, directory / CHECKPOINT_FAMILIES["open_clip_trunk"].file_name)


# --- DINOv2 ----------------------------------------------------------------------------------

def write_dinov2(model: nn.Module, name: str, directory: Path) -> Path:
    """Meta's DINOv2 layout: a mask_token, SwiGLU MLPs as w12/w3, and (with registers)
    register_tokens plus a class position inside pos_embed."""
    sd = _sd(model)
    swiglu = "SwiGLU" in type(model.blocks[0].mlp).__name__
    out = {}
    for k, v in sd.items():
        if swiglu:
            k = k.replace("mlp.fc1.", "mlp.w12.").replace("mlp.fc2.", "mlp.w3.")
        out[k] = v
    if "reg_token" in out:
        # timm: cls = cls' + pos'[:, 0], pos = pos'[:, 1:]. Split cls exactly: cls' is cls
        # rounded to bf16, pos'[:, 0] the remainder (both exact in float32, Sterbenz).
        cls = out.pop("cls_token")
        coarse = cls.to(torch.bfloat16).float()
        out["cls_token"] = coarse
        out["pos_embed"] = torch.cat([(cls - coarse).reshape(1, 1, -1), out["pos_embed"]], dim=1)
        out["register_tokens"] = out.pop("reg_token")
    if "head.weight" in out and out["head.weight"].numel():
        raise UnsupportedLayout("a DINOv2 backbone checkpoint has no classifier head")
    out["mask_token"] = deterministic_value(name, "mask_token", torch.empty(1, model.embed_dim))
    return _torch_save(out, directory / CHECKPOINT_FAMILIES["dinov2"].file_name)


# --- Google .npz (vit_jax and big_vision) ----------------------------------------------------

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def npz_arrays(model: nn.Module, big_vision: bool) -> dict[str, np.ndarray]:
    """Inverse of timm's _load_weights for a plain (non-hybrid) ViT: HWIO conv kernels,
    (in, out) dense kernels, per-head (D, H, hd) attention kernels."""
    if hasattr(model.patch_embed, "backbone") or getattr(model, "attn_pool", None) is not None:
        raise UnsupportedLayout("hybrid and attention-pool ViTs are not written by the .npz writer")
    if not isinstance(getattr(model, "fc_norm", nn.Identity()), nn.Identity) or \
            not isinstance(getattr(model, "norm_pre", nn.Identity()), nn.Identity):
        raise UnsupportedLayout("the Google .npz layout has no fc_norm / norm_pre")
    prefix = "params/" if big_vision else ""
    w = {f"{prefix}embedding/kernel": _np(model.patch_embed.proj.weight.permute(2, 3, 1, 0)),
         f"{prefix}embedding/bias": _np(model.patch_embed.proj.bias)}
    if model.cls_token is not None:
        w[f"{prefix}cls"] = _np(model.cls_token)
    pos_key = f"{prefix}pos_embedding" if big_vision else f"{prefix}Transformer/posembed_input/pos_embedding"
    w[pos_key] = _np(model.pos_embed)
    w[f"{prefix}Transformer/encoder_norm/scale"] = _np(model.norm.weight)
    w[f"{prefix}Transformer/encoder_norm/bias"] = _np(model.norm.bias)
    if isinstance(model.head, nn.Linear):
        w[f"{prefix}head/kernel"] = _np(model.head.weight.t())
        w[f"{prefix}head/bias"] = _np(model.head.bias)
    mha_sub, b_sub, ln1_sub = (0, 0, 1) if big_vision else (1, 3, 2)
    for i, block in enumerate(model.blocks):
        bp = f"{prefix}Transformer/encoderblock_{i}/"
        mha = f"{bp}MultiHeadDotProductAttention_{mha_sub}/"
        heads = block.attn.num_heads
        dim = block.attn.qkv.weight.shape[1]
        w[f"{bp}LayerNorm_0/scale"], w[f"{bp}LayerNorm_0/bias"] = _np(block.norm1.weight), _np(block.norm1.bias)
        for n, wt, b in zip(("query", "key", "value"), block.attn.qkv.weight.chunk(3), block.attn.qkv.bias.chunk(3)):
            w[f"{mha}{n}/kernel"] = _np(wt.t().reshape(dim, heads, -1))
            w[f"{mha}{n}/bias"] = _np(b.reshape(heads, -1))
        w[f"{mha}out/kernel"] = _np(block.attn.proj.weight.reshape(dim, heads, -1).permute(1, 2, 0))
        w[f"{mha}out/bias"] = _np(block.attn.proj.bias)
        ln1 = f"{bp}LayerNorm_{ln1_sub}/"
        w[f"{ln1}scale"], w[f"{ln1}bias"] = _np(block.norm2.weight), _np(block.norm2.bias)
        for r, fc in enumerate((block.mlp.fc1, block.mlp.fc2)):
            w[f"{bp}MlpBlock_{b_sub}/Dense_{r}/kernel"] = _np(fc.weight.t())
            w[f"{bp}MlpBlock_{b_sub}/Dense_{r}/bias"] = _np(fc.bias)
    missing = [k for k in model.state_dict() if _npz_covers(k) is False]
    if missing:
        raise UnsupportedLayout(f"timm tensors the .npz layout cannot carry: {missing[:8]}")
    return w


def _npz_covers(key: str) -> bool:
    import re
    return bool(re.match(r"(patch_embed\.proj\.(weight|bias)|cls_token|pos_embed|norm\.(weight|bias)|head\.(weight|bias)"
                         r"|blocks\.\d+\.(norm[12]|attn\.qkv|attn\.proj|mlp\.fc[12])\.(weight|bias))$", key))


def _write_npz(model: nn.Module, directory: Path, family: str, big_vision: bool) -> Path:
    arrays = npz_arrays(model, big_vision)
    path = directory / CHECKPOINT_FAMILIES[family].file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as fh:
        np.savez(fh, **arrays)
    path.with_suffix(".tmp").replace(path)
    return path


def write_vit_jax_npz(model: nn.Module, name: str, directory: Path) -> Path:
    return _write_npz(model, directory, "vit_jax_npz", big_vision=False)


def write_big_vision_npz(model: nn.Module, name: str, directory: Path) -> Path:
    return _write_npz(model, directory, "big_vision_npz", big_vision=True)


# --- I-JEPA ----------------------------------------------------------------------------------

def write_ijepa(model: nn.Module, name: str, directory: Path) -> Path:
    enc = {f"module.{k}": v for k, v in _sd(model).items() if not k.startswith("head.")}
    if any(k.startswith("head.") and v.numel() for k, v in _sd(model).items()):
        raise UnsupportedLayout("an I-JEPA encoder checkpoint has no classifier head")
    return _torch_save({"encoder": enc, "epoch": 300}, directory / CHECKPOINT_FAMILIES["ijepa"].file_name)


WRITERS: dict[str, Callable[[nn.Module, str, Path], Path]] = {
    "timm": write_timm,
    "third_party_hub": write_timm,
    "open_clip": write_open_clip,
    "open_clip_ddp": write_open_clip_ddp,
    "open_clip_trunk": write_open_clip_trunk,
    "openai_clip": write_openai_clip,
    "dinov2": write_dinov2,
    "vit_jax_npz": write_vit_jax_npz,
    "big_vision_npz": write_big_vision_npz,
    "ijepa": write_ijepa,
}


def write_family(family: str, model: nn.Module, name: str, directory: Path) -> Path:
    """Write ``model`` in ``family``'s layout (projecting it in place onto what the layout
    carries). Raises UnsupportedLayout for a model the layout cannot hold."""
    if family not in WRITERS:
        raise UnsupportedLayout(f"no writer for checkpoint family {family!r}")
    return WRITERS[family](model, name, directory / family)


def load_overlay(family: str, path: Path) -> dict:
    """The pretrained_cfg_overlay a user passes for a local copy of a file in this
    family's layout: ``dict(file=path)``, plus ``custom_load=True`` for the families timm
    reads with ``model.load_pretrained()`` (the Google .npz files). timm 1.0.31 resets
    ``custom_load`` when a ``file`` is given unless it is set explicitly (its comment: "e.g.
    custom_load=True for a local copy of original .npz weights"); before 1.0.31 the tag's
    own cfg already carries it, so the same call works on every release."""
    overlay = checkpoints.file_overlay(path)
    if CHECKPOINT_FAMILIES[family].custom_load:
        overlay["custom_load"] = True
    return overlay
