"""Progress of long runs, printed by the controller (so it works under xdist) as plain
periodic lines that CI logs keep: models done / total, tests done / total, elapsed time
and an ETA from the mean time per finished test.

    [harness progress] models 37/150, tests 812/3301 (24.6%), 0 failed, elapsed 5m12s, ETA 15m57s
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterable

from harness.registry.test_ids import model_of


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    def __init__(self, interval: float, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.write = write
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.remaining: Counter = Counter()   # model -> tests not finished
        self.total_tests = 0
        self.done_tests = 0
        self.failed = 0
        self.models_done = 0
        self._seen: set[str] = set()

    def set_tests(self, nodeids: Iterable[str]) -> None:
        if self.total_tests:  # xdist: every worker reports the same collection
            return
        for nid in nodeids:
            self.remaining[model_of(nid)] += 1
            self.total_tests += 1

    def finished(self, nodeid: str, failed: bool) -> None:
        if nodeid in self._seen or not self.total_tests:
            return
        self._seen.add(nodeid)
        self.done_tests += 1
        self.failed += failed
        model = model_of(nodeid)
        if model in self.remaining:
            self.remaining[model] -= 1
            if self.remaining[model] == 0:
                self.models_done += 1
        now = self.clock()
        if now - self.last >= self.interval or self.done_tests == self.total_tests:
            self.last = now
            self.write(self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = now - self.started
        left = self.total_tests - self.done_tests
        eta = elapsed / self.done_tests * left if self.done_tests else float("nan")
        pct = 100.0 * self.done_tests / self.total_tests if self.total_tests else 100.0
        return (f"[harness progress] models {self.models_done}/{len(self.remaining)}, tests "
                f"{self.done_tests}/{self.total_tests} ({pct:.1f}%), {self.failed} failed, "
                f"elapsed {_fmt(elapsed)}, ETA {_fmt(eta) if self.done_tests else '?'}")
