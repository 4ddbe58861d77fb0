"""Checkpoint families: which project's file layout timm reads for each pretrained tag
(data; the classification that applies these rules is harness.models.checkpoint_sources).

A tag's weights are stored in the layout of the project that trained them and timm
converts them on load (``checkpoint_filter_fn`` or a custom ``load_pretrained``). A tag is
classified by the first matching rule of ``RULES``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointFamily:
    name: str
    title: str
    converted_by: str      # where timm converts it
    file_name: str         # the file name the family publishes (suffix decides timm's reader)
    custom_load: bool = False  # timm reads it with model.load_pretrained(), not load_state_dict


CHECKPOINT_FAMILIES: dict[str, CheckpointFamily] = {f.name: f for f in (
    CheckpointFamily("timm", "timm native state_dict", "identity (+ filter resampling)", "model.safetensors"),
    CheckpointFamily("openai_clip", "OpenAI CLIP (fp16, visual.* / transformer.*)",
           "vision_transformer._convert_openai_clip", "open_clip_pytorch_model.bin"),
    CheckpointFamily("open_clip", "OpenCLIP (fp32, OpenAI key names)", "vision_transformer._convert_openai_clip",
           "open_clip_pytorch_model.bin"),
    CheckpointFamily("open_clip_ddp", "OpenCLIP saved from DDP ({'state_dict': module.*})",
           "vision_transformer._convert_openai_clip(prefix='module.visual.')", "open_clip_ddp.bin"),
    CheckpointFamily("open_clip_trunk", "OpenCLIP with a timm trunk (visual.trunk.*)",
           "checkpoint_filter_fn prefix 'visual.trunk.' (vit, eva, convnext)", "open_clip_pytorch_model.bin"),
    CheckpointFamily("dinov2", "Meta DINOv2 (mask_token, w12/w3, register_tokens)", "vision_transformer._convert_dinov2",
           "dinov2.pth"),
    CheckpointFamily("vit_jax_npz", "Google vit_jax .npz (Transformer/encoderblock_i)", "vision_transformer._load_weights",
           "vit_jax.npz", custom_load=True),
    CheckpointFamily("big_vision_npz", "Google big_vision .npz (params/, pos_embedding)", "vision_transformer._load_weights",
           "big_vision.npz", custom_load=True),
    CheckpointFamily("ijepa", "Meta I-JEPA ({'encoder': module.*})", "checkpoint_filter_fn 'encoder'", "ijepa.pth.tar"),
    CheckpointFamily("mobileclip", "Apple MobileCLIP (.pt)", "fastvit / vision_transformer filters", "mobileclip.pt"),
    CheckpointFamily("third_party_hub", "third-party hub repo in timm layout", "identity", "model.safetensors"),
    CheckpointFamily("url_other", "other URL file (.pth/.tar/.pyth/.torch)", "per-model checkpoint_filter_fn", "model.pth"),
)}


@dataclass(frozen=True)
class Rule:
    """First match wins. Every given field is an fnmatch pattern that must match."""
    family: str
    source: str                    # 'hub' or 'url': which pretrained source the rule reads
    hub: str | None = None         # hf_hub_id
    filename: str | None = None    # hf_hub_filename ('' when unset)
    url: str | None = None
    custom_load: bool | None = None
    model: str | None = None
    tag: str | None = None


RULES: tuple[Rule, ...] = (
    Rule("open_clip_ddp", "hub", filename="metaclip_*.bin"),
    Rule("open_clip_trunk", "hub", filename="open_clip_*", model="convnext*"),
    Rule("open_clip_trunk", "hub", filename="open_clip_*", model="eva*"),
    Rule("open_clip_trunk", "hub", filename="open_clip_*", model="vitamin*"),
    Rule("openai_clip", "hub", filename="open_clip_*", tag="openai*"),
    Rule("open_clip", "hub", filename="open_clip_*"),
    Rule("timm", "hub", hub="timm/*", filename=""),
    Rule("third_party_hub", "hub", filename=""),
    Rule("vit_jax_npz", "url", url="*/vit_models/*.npz", custom_load=True),
    Rule("big_vision_npz", "url", url="*big_vision*.npz", custom_load=True),
    Rule("openai_clip", "url", url="*openaipublic*"),
    Rule("dinov2", "url", url="*/dinov2/*"),
    Rule("ijepa", "url", url="*/ijepa/*"),
    Rule("mobileclip", "url", url="*/mobileclip/*"),
    Rule("timm", "url", url="*/pytorch-image-models/releases/*"),
    Rule("url_other", "url", url="?*"),
)

# Who trained the weights, from the tag name (informational: the layout loaded is the family).
ORIGINS: tuple[tuple[str, str], ...] = (
    ("openai*", "OpenAI CLIP"), ("laion*", "OpenCLIP"), ("datacomp*", "OpenCLIP"), ("dfn*", "OpenCLIP (Apple DFN)"),
    ("metaclip*", "OpenCLIP (Meta MetaCLIP)"), ("clip_laion*", "OpenCLIP"), ("*lvd142m*", "DINOv2"),
    ("*dinov3*", "DINOv3"), ("augreg*", "Google vit_jax"), ("goog*", "Google"), ("*webli*", "Google big_vision"),
    ("sam_in1k", "Google vit_jax (SAM optimizer)"), ("*ijepa*", "Meta I-JEPA"), ("*in22k_ijepa", "Meta I-JEPA"),
    ("fb_*", "Meta"), ("*merged2b*", "EVA-CLIP"), ("*mim*", "EVA/BEiT MIM"),
)
