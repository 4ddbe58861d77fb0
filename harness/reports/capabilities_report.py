"""``python -m harness capabilities [--models SEL] [--report FILE]``: what discovery
(harness.models.capabilities) finds over a selection of models, as capability -> number of
models, printed with rich and written as Markdown (default
reports/capabilities.md). Capabilities are cached where the suites cache them (pytest's
cache directory, same keys), so a report after a run, or a run after a report, reuses them."""
from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.models.capabilities import Capabilities, capabilities_for
from harness.models.selection import SelectionError, resolve_models
from harness.registry.paths import ROOT

CACHE_DIR = ROOT / ".pytest_cache" / "v"  # pytest's Cache layout: one JSON file per key
EXAMPLES = 3


def cache_get(key: str, default: Any = None) -> Any:
    try:
        return json.loads((CACHE_DIR / key).read_text())
    except (OSError, ValueError):
        return default


def cache_set(key: str, value: Any) -> None:
    path = CACHE_DIR / key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.replace(path)


def tally(caps: dict[str, Capabilities]) -> list[tuple[str, str, list[str]]]:
    """(section, capability, models) rows, in report order."""
    rows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for model, c in caps.items():
        if c.error:
            rows[("discovery", "default build failed on the meta device")].append(model)
            continue
        rows[("pool", f"default global_pool={c.default_pool!r}")].append(model)
        for p in c.pools:
            rows[("pool", f"accepts global_pool={p!r}")].append(model)
        if c.unpooled:
            rows[("pool", "accepts num_classes=0, global_pool=''")].append(model)
        for p in c.attn_pools:
            rows[("pool", f"attention pool with global_pool={p!r}")].append(model)
        for p in c.ignored_pools:
            rows[("pool", f"accepts but ignores global_pool={p!r}")].append(model)
        for name, values in c.head_kwargs.items():
            for v in values:
                rows[("head kwarg", f"{name}={v!r}")].append(model)
        for name in dict.fromkeys(next(iter(kwargs)) for kwargs in c.ctor_kwargs.values()):  # a kwarg once per model
            rows[("constructor kwarg", name)].append(model)
        for chans in c.in_chans:
            rows[("input", f"in_chans={chans} (pretrained first conv adapted)")].append(model)
        if c.fixed_input_size:
            rows[("input", "fixed_input_size")].append(model)
        if c.num_prefix_tokens is not None:
            rows[("tokens", f"num_prefix_tokens={c.num_prefix_tokens}")].append(model)
        if c.entry_kwargs:
            rows[("entry point", "passes kwargs to build_model_with_cfg (round trip checked)")].append(model)
        for case in c.broken:
            rows[("broken", f"{case}: accepted, then construction crashed")].append(model)
    order = ("pool", "head kwarg", "constructor kwarg", "input", "tokens", "entry point", "broken", "discovery")
    return sorted(((s, n, m) for (s, n), m in rows.items()), key=lambda r: (order.index(r[0]), -len(r[2]), r[1]))


def render(rows: list[tuple[str, str, list[str]]], total: int, title: str) -> Table:
    table = Table(title=title)
    for col in ("section", "capability", "models", "share", "examples"):
        table.add_column(col, justify="right" if col in ("models", "share") else "left")
    for section, name, models in rows:
        table.add_row(section, name, str(len(models)), f"{100 * len(models) / max(total, 1):.0f}%",
                      ", ".join(models[:EXAMPLES]) + (" ..." if len(models) > EXAMPLES else ""))
    return table


def markdown(rows: list[tuple[str, str, list[str]]], total: int, title: str) -> str:
    lines = [f"# {title}", "", "| section | capability | models | share | examples |",
             "| --- | --- | ---: | ---: | --- |"]
    for section, name, models in rows:
        shown = ", ".join(f"`{m}`" for m in models[:EXAMPLES]) + (" ..." if len(models) > EXAMPLES else "")
        lines.append(f"| {section} | `{name}` | {len(models)} | {100 * len(models) / max(total, 1):.0f}% | {shown} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness capabilities",
                                description="capability -> number of models, as discovered on the meta device")
    p.add_argument("--models", default="smoke", help="fnmatch patterns, 'smoke' (default) or 'all'")
    p.add_argument("--exclude", default="", help="comma-separated fnmatch patterns removed from the selection")
    p.add_argument("--report", type=Path, default=ROOT / "reports" / "capabilities.md", help="Markdown output")
    p.add_argument("--json", type=Path, default=None, help="also write every model's capabilities as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        models = resolve_models(args.models, args.exclude)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    caps = {}
    for i, name in enumerate(models, 1):
        caps[name] = capabilities_for(name, cache_get, cache_set)
        if len(models) > 20 and i % 50 == 0:
            print(f"  discovered {i}/{len(models)}", file=sys.stderr)
    import timm

    title = f"Capabilities of {len(models)} models (timm {timm.__version__})"
    rows = tally(caps)
    Console(file=sys.stdout, width=160).print(render(rows, len(models), title))
    totals = Counter(s for s, _, _ in rows)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(rows, len(models), title))
    if args.json is not None:
        args.json.write_text(json.dumps({m: c.to_json() for m, c in caps.items()}, indent=1, sort_keys=True))
    print(f"{sum(totals.values())} capability rows; report written to {args.report}")
    return 0


def _capture(table: Table) -> str:  # for tests: the rendered table as text
    buf = io.StringIO()
    Console(file=buf, width=160).print(table)
    return buf.getvalue()
