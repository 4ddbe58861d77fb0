"""Checkpoint sources: the checkpoint family (registry.checkpoint_families) of each
pretrained tag, i.e. which project's file layout timm reads for it.

A tag's weights are stored in the layout of the project that trained them and timm
converts them on load (``checkpoint_filter_fn`` or a custom ``load_pretrained``). The
family of a tag is found from its pretrained config exactly as timm picks the source
(``_resolve_pretrained_source``: the Hugging Face hub id first, the URL when the hub is
unavailable), then classified by the first matching rule of ``RULES`` (data, not code).
A tag can have two sources (hub and URL fallback); both are real load paths.

``python -m harness families [--report FILE] [--models PATTERN]`` prints the table
family -> tags -> models.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import timm.models  # noqa: E402

from harness.registry.checkpoint_families import CHECKPOINT_FAMILIES, ORIGINS, RULES, Rule  # noqa: E402


def _get(cfg: dict[str, Any], key: str) -> str:
    return str(cfg.get(key) or "")


def _matches(rule: Rule, cfg: dict[str, Any], model: str, tag: str) -> bool:
    fields = {"hub": _get(cfg, "hf_hub_id"), "filename": _get(cfg, "hf_hub_filename"), "url": _get(cfg, "url"),
              "model": model, "tag": tag}
    for name, value in fields.items():
        pattern = getattr(rule, name)
        if pattern is not None and not fnmatch.fnmatchcase(value, pattern):
            return False
    return rule.custom_load is None or bool(cfg.get("custom_load")) == rule.custom_load


def classify(cfg: dict[str, Any], model: str, tag: str, source: str) -> str | None:
    for rule in RULES:
        if rule.source == source and _matches(rule, cfg, model, tag):
            return rule.family
    return None


def sources(cfg: dict[str, Any]) -> list[str]:
    """The pretrained sources timm would read, in its order of preference."""
    out = []
    if cfg.get("hf_hub_id"):
        out.append("hub")
    if cfg.get("url"):
        out.append("url")
    return out


@dataclass(frozen=True)
class TagFamilies:
    tag: str                  # 'model.tag'
    model: str
    primary: str | None       # the family timm loads by default (hub when a hub id is set)
    fallback: str | None      # the family of the URL source when the hub is unavailable
    origin: str

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for f in (self.primary, self.fallback) if f))


def origin_of(tag: str) -> str:
    suffix = tag.split(".", 1)[1] if "." in tag else ""
    for pattern, origin in ORIGINS:
        if fnmatch.fnmatchcase(suffix, pattern):
            return origin
    return ""


def tag_families(tag: str) -> TagFamilies:
    model = tag.split(".", 1)[0]
    cfg = timm.models.get_pretrained_cfg(tag)
    cfg = cfg.to_dict() if cfg is not None else {}
    found = [classify(cfg, model, tag.split(".", 1)[-1], s) for s in sources(cfg)]
    primary = found[0] if found else None
    fallback = found[1] if len(found) > 1 and found[1] != primary else None
    return TagFamilies(tag, model, primary, fallback, origin_of(tag))


def pretrained_tags(model: str) -> list[str]:
    """The model's pretrained tags as 'model.tag' (a model with one untagged config gives
    its bare name)."""
    return timm.list_pretrained(f"{model}.*") or timm.list_pretrained(model)


def all_tag_families(models: list[str] | None = None) -> list[TagFamilies]:
    tags = timm.list_pretrained() if models is None else [t for m in models for t in pretrained_tags(m)]
    return [tag_families(t) for t in tags]


def family_table(rows: list[TagFamilies]) -> str:
    """Markdown: family -> number of tags, models, example tags (primary and fallback)."""
    by_family: dict[str, list[TagFamilies]] = defaultdict(list)
    for row in rows:
        for fam in row.families:
            by_family[fam].append(row)
    lines = [f"# Checkpoint families (timm {timm.__version__}, {len(rows)} pretrained tags)", "",
             "| family | layout | converted by | tags (primary) | tags (URL fallback) | models | examples |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for name, fam in CHECKPOINT_FAMILIES.items():
        members = by_family.get(name, [])
        primary = sum(r.primary == name for r in members)
        fallback = sum(r.fallback == name for r in members)
        models = sorted({r.model for r in members})
        examples = ", ".join(r.tag for r in members[:3])
        lines.append(f"| `{name}` | {fam.title} | {fam.converted_by} | {primary} | {fallback} | {len(models)} | "
                     f"{examples} |")
    unknown = [r.tag for r in rows if not r.families]
    lines += ["", f"Tags with no weight source: {len(unknown)}" + (f" ({', '.join(unknown[:5])} ...)" if unknown else "")]
    lines += ["", "## Tags per family", ""]
    for name in CHECKPOINT_FAMILIES:
        members = by_family.get(name, [])
        if not members:
            continue
        lines.append(f"### `{name}` ({len(members)} tags)")
        lines.append("")
        per_model: dict[str, list[str]] = defaultdict(list)
        for r in members:
            per_model[r.model].append(r.tag.split(".", 1)[-1] + (f" ({r.origin})" if r.origin else ""))
        for model, tags in sorted(per_model.items()):
            lines.append(f"- {model}: {', '.join(tags)}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness families", description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="write the Markdown table here")
    parser.add_argument("--models", default="", help="fnmatch pattern over model names (default: all tags)")
    args = parser.parse_args(argv)
    rows = all_tag_families()
    if args.models:
        rows = [r for r in rows if fnmatch.fnmatchcase(r.model, args.models)]
    text = family_table(rows)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    print(text)
    return 0
