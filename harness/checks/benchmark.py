"""Inference throughput of one model: a timed step (forward under torch.inference_mode,
optional autocast and channels_last, CUDA synchronized so the time is the GPU's), the
settings it runs with, and timm benchmark.py style result rows.

Used by the `benchmark` suite (through pytest-benchmark) and by the interleaved
baseline-vs-candidate comparison (harness/bench_compare.py), so both time the same step.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import pytest
import torch

from harness.models import build
from harness.weights.deterministic import fill_deterministic, make_input

# timm's benchmark.py result columns, in its order for inference
CSV_COLUMNS = ("model", "infer_img_size", "infer_samples_per_sec", "infer_step_time", "infer_batch_size",
               "param_count")
_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class BenchSettings:
    device: str = "cpu"
    batch_size: int = 2
    img_size: int | None = None    # None: see input_size_for
    amp: str = "none"              # none | bf16 | fp16
    channels_last: bool = False
    warmup: int = 3
    rounds: int = 10

    @staticmethod
    def from_config(config: pytest.Config, device: str) -> "BenchSettings":
        opt = config.getoption
        batch = opt("--bench-batch-size") or (256 if device == "cuda" else 2)
        return BenchSettings(device, batch, opt("--bench-img-size"), opt("--bench-amp"),
                             opt("--bench-channels-last"), opt("--bench-warmup"), opt("--bench-rounds"))


def input_size_for(model_name: str, settings: BenchSettings, numeric_size: tuple[int, ...]) -> tuple[int, ...]:
    """--bench-img-size when given; on CUDA the model's pretrained input size (what timm's
    benchmark.py uses); on the CPU the harness's (possibly shrunk) numeric-check size."""
    if settings.img_size:
        return (numeric_size[0], settings.img_size, settings.img_size)
    if settings.device == "cuda":
        return tuple(build.pretrained_cfg(model_name).get("input_size") or numeric_size)
    return tuple(numeric_size)


@dataclass
class BenchStep:
    """A ready model and input; calling it runs one synchronized inference step."""

    model_name: str
    model: torch.nn.Module
    x: torch.Tensor
    settings: BenchSettings
    param_count: int

    def __call__(self) -> None:
        amp = (torch.autocast(self.settings.device, dtype=_AMP[self.settings.amp])
               if self.settings.amp != "none" else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            self.model(self.x)
        if self.settings.device == "cuda":
            torch.cuda.synchronize()

    def row(self, step_time_s: float) -> dict:
        """timm benchmark.py's columns (step time in ms, param count in millions)."""
        return {"model": self.model_name, "infer_img_size": self.x.shape[-1],
                "infer_samples_per_sec": round(self.x.shape[0] / step_time_s, 2),
                "infer_step_time": round(1000 * step_time_s, 3), "infer_batch_size": self.x.shape[0],
                "param_count": round(self.param_count / 1e6, 2)}


def make_step(model_name: str, settings: BenchSettings, numeric_size: tuple[int, ...]) -> BenchStep:
    model = fill_deterministic(build.create(model_name, device=settings.device), model_name)
    x = make_input(model_name, input_size_for(model_name, settings, numeric_size), settings.batch_size,
                   settings.device)
    if settings.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return BenchStep(model_name, model, x, settings, build.param_count(model))


def time_step(step: Callable[[], None], warmup: int, rounds: int) -> list[float]:
    """Seconds per step for ``rounds`` timed steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def median_step(times: list[float]) -> float:
    return statistics.median(times)


def settings_dict(settings: BenchSettings) -> dict:
    return asdict(settings)
