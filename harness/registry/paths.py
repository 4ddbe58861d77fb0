"""Where the harness keeps its files, relative to the checkout it runs from."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # the checkout: harness/registry/paths.py
EXPECTED_DIR = ROOT / "expected"                # expected status, durations (committed)
GOLDEN_DIR = ROOT / "golden"                    # golden outputs (committed)
CACHE_DIR = ROOT / ".cache"                     # old timm releases, probes (never committed)
GRAPH_BREAKS_FILE = EXPECTED_DIR / "graph_breaks.json"  # recorded torch.compile graph-break counts (committed)
