"""The peak-memory guard behind ``--max-rss-gb``.

Three layers, all on Linux's per-process accounting (no extra dependency):
- before a numeric test, a model whose parameter count implies more than the limit
  (``estimate_gb``) is skipped with the estimate in the reason;
- around each test the process's peak RSS is reset (``/proc/self/clear_refs``) and read
  back (``VmHWM``): a test that passed but peaked over the limit fails, naming the peak;
- on xdist workers a watchdog thread kills the worker when its RSS passes
  ``HARD_FACTOR`` x the limit, before the machine runs out of memory; xdist replaces the
  worker and the test is reported as crashed (see harness.plugin.sweep).
"""
from __future__ import annotations

import os
import sys
import threading
import time

GB = 1024 ** 3
# A numeric check holds several copies of a model's float32 weights at once: the model,
# its state_dict clone, the checkpoint files written and read back, a loaded model, and a
# float64 copy in the reparam check; 10 copies plus the interpreter is a conservative bound.
COPIES = 10
BASE_GB = 0.6     # torch + timm + pytest in one process
HARD_FACTOR = 1.5


class MemoryGuardError(AssertionError):
    """A test's peak memory exceeded --max-rss-gb."""


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def supported() -> bool:
    return _status_kb("VmHWM") is not None and os.access("/proc/self/clear_refs", os.W_OK)


def rss_gb() -> float:
    return (_status_kb("VmRSS") or 0) * 1024 / GB


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_gb() -> float:
    return (_status_kb("VmHWM") or 0) * 1024 / GB


def estimate_gb(param_count: int | None) -> float:
    return BASE_GB + (param_count or 0) * 4 * COPIES / GB


def check_peak(limit_gb: float, what: str) -> None:
    peak = peak_gb()
    if peak > limit_gb:
        raise MemoryGuardError(f"memory guard: peak RSS {peak:.2f} GB while running {what} exceeded "
                               f"--max-rss-gb {limit_gb:g}")


def start_watchdog(limit_gb: float, interval: float = 0.1) -> threading.Thread:
    """Kill this process (an xdist worker) when its RSS passes HARD_FACTOR x the limit."""
    hard = limit_gb * HARD_FACTOR

    def watch() -> None:
        while True:
            now = rss_gb()
            if now > hard:
                sys.stderr.write(f"\nmemory guard: worker RSS {now:.2f} GB passed {HARD_FACTOR} x --max-rss-gb "
                                 f"{limit_gb:g}; killing the worker so the run goes on\n")
                sys.stderr.flush()
                os._exit(86)
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="harness-memory-watchdog", daemon=True)
    thread.start()
    return thread
