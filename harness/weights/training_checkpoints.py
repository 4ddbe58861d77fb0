"""Training checkpoints written the way timm's training script writes them, and what a
resume must restore from them.

``train.py`` (``legacy_train.py`` in 1.0.23 on, whose model/EMA path the task-based
``train.py`` keeps for plain classification) builds the model, ``create_optimizer_v2``,
a ``ModelEmaV3`` and a ``CheckpointSaver(model, optimizer, args, model_ema, ...)`` and
calls ``saver.save_checkpoint(epoch, metric)`` after each epoch: a ``torch.save`` of
``{'epoch', 'arch', 'state_dict', 'optimizer', 'version', 'args', 'state_dict_ema',
'metric', ...}`` with ``args`` an ``argparse.Namespace``. Resuming calls
``resume_checkpoint(model, path, optimizer=..., loss_scaler=..., log_info=...)`` and
``load_checkpoint(model_ema.module, path, use_ema=True)``; validate.py
``load_checkpoint(model, path, use_ema=...)``.

Here one deterministic training step (SGD with momentum, train.py's default optimizer)
gives a model, an EMA and momentum buffers that all differ, so a loader that returns the
wrong one is caught; the expected tensors are stored by name beside the checkpoint in
safetensors. Only APIs timm 0.9.16 already had are used (the export runs under every
baseline).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.models import build
from harness.weights.deterministic import fill_deterministic, make_input, seed_for

CHECKPOINT, EXPECTED = "train_checkpoint.pth.tar", "train_expected.safetensors"
EPOCH, METRIC = 3, 71.5
# train.py's defaults for the optimizer (--opt sgd, --momentum 0.9, --weight-decay 2e-5) and
# an EMA decay low enough that one update moves the EMA visibly away from both weights
OPTIMIZER = dict(opt="sgd", lr=0.1, weight_decay=2e-5, momentum=0.9)
EMA_DECAY = 0.5
UPDATE_STEP = 10  # train.py passes the update count; the first update (step 1) only copies the model


def train_args(model_name: str) -> argparse.Namespace:
    """The argparse.Namespace train.py stores in every checkpoint: the fields of its parser
    that a classification run sets, with the value types it produces (str, int, float,
    bool, None, list, tuple), plus what train.py adds after parsing."""
    return argparse.Namespace(
        data_dir="/data/imagenet", dataset="", train_split="train", val_split="validation", model=model_name,
        pretrained=False, initial_checkpoint="", resume="", no_resume_opt=False, num_classes=None, gp=None,
        img_size=None, in_chans=None, input_size=None, crop_pct=None, mean=None, std=None, interpolation="",
        batch_size=128, validation_batch_size=None, channels_last=False, grad_accum_steps=1, grad_checkpointing=False,
        opt=OPTIMIZER["opt"], opt_eps=None, opt_betas=None, momentum=OPTIMIZER["momentum"],
        weight_decay=OPTIMIZER["weight_decay"], clip_grad=None, clip_mode="norm", sched="cosine", lr=None,
        lr_base=0.1, lr_base_size=256, lr_base_scale="", lr_noise=None, warmup_lr=1e-5, min_lr=0.0, epochs=300,
        warmup_epochs=5, decay_epochs=90, decay_milestones=[90, 180, 270], aa=None, scale=[0.08, 1.0],
        ratio=[3.0 / 4.0, 4.0 / 3.0], hflip=0.5, mixup=0.0, cutmix=0.0, smoothing=0.1, drop=0.0, drop_path=None,
        model_ema=True, model_ema_decay=EMA_DECAY, model_ema_warmup=False, seed=42, log_interval=50,
        checkpoint_hist=10, workers=4, amp=False, amp_dtype="float16", torchcompile=None, output="",
        experiment="", eval_metric="top1", prefetcher=True, distributed=False, world_size=1, rank=0, local_rank=0,
        device="cpu", tta=0, input_img_mode=None, train_interpolation="random", lr_k_decay=1.0,
        lr_cycle_limit=1, lr_cycle_decay=0.5, ratio_range=(0.75, 1.3333333333333333))


@dataclass
class TrainingState:
    model: nn.Module
    ema: nn.Module              # the EMA wrapper (ModelEmaV3, or what the release has)
    optimizer: torch.optim.Optimizer


def ema_class():
    """timm.utils.ModelEmaV3 (0.9.16 on), else the newest the release has."""
    import timm.utils

    return getattr(timm.utils, "ModelEmaV3", None) or timm.utils.ModelEmaV2


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(model, **OPTIMIZER)


def train_one_step(model_name: str, input_size, create_kwargs: dict | None = None) -> TrainingState:
    """The deterministic model after one SGD step in train mode, with its EMA updated."""
    model = fill_deterministic(build.create(model_name, device="cpu", **(create_kwargs or {})), model_name).train()
    ema = ema_class()(model, decay=EMA_DECAY)
    optimizer = make_optimizer(model)
    x = make_input(model_name, input_size)
    torch.manual_seed(seed_for(model_name, "train") % (2 ** 31))
    outs = build.flatten_outputs(model(x))
    gen = torch.Generator().manual_seed(seed_for(model_name, "train", "loss"))
    loss = sum((o * torch.randn(o.shape, generator=gen)).mean() for o in outs)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    try:
        ema.update(model, step=UPDATE_STEP)
    except TypeError:  # ModelEmaV2.update(model)
        ema.update(model)
    return TrainingState(model, ema, optimizer)


def momentum_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's momentum buffers keyed by parameter name (not by index, so a resume
    that maps buffers to the wrong parameters is caught)."""
    names = {id(p): n for n, p in model.named_parameters()}
    found = {}
    for p, state in optimizer.state.items():
        if "momentum_buffer" in state and state["momentum_buffer"] is not None and id(p) in names:
            found[names[id(p)]] = state["momentum_buffer"]
    return found


def expected_tensors(state: TrainingState) -> dict[str, torch.Tensor]:
    from timm.utils import unwrap_model

    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in unwrap_model(state.ema).state_dict().items()})
    tensors.update({f"momentum.{k}": v for k, v in momentum_by_name(state.model, state.optimizer).items()})
    return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}


def write_training_checkpoint(model_name: str, directory: Path, input_size,
                              create_kwargs: dict | None = None) -> tuple[Path, Path]:
    """CHECKPOINT (written by timm's CheckpointSaver.save_checkpoint) and EXPECTED in
    ``directory``; returns both paths."""
    from timm.utils import CheckpointSaver

    state = train_one_step(model_name, input_size, create_kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as out:
        saver = CheckpointSaver(model=state.model, optimizer=state.optimizer, args=train_args(model_name),
                                model_ema=state.ema, amp_scaler=None, checkpoint_dir=out, recovery_dir=out,
                                decreasing=False, max_history=2)
        saver.save_checkpoint(EPOCH, metric=METRIC)
        written = Path(out) / f"checkpoint-{EPOCH}.pth.tar"
        shutil.copyfile(written, directory / CHECKPOINT)
    save_file(expected_tensors(state), str(directory / EXPECTED))
    return directory / CHECKPOINT, directory / EXPECTED


def load_expected(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """{'model': ..., 'ema': ..., 'momentum': ...} from an EXPECTED file."""
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "momentum": {}}
    for key, value in load_file(str(path)).items():
        group, name = key.split(".", 1)
        groups[group][name] = value
    return groups
