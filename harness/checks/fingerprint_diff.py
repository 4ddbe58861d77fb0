"""The rule of change-aware selection, in one place: a model is affected between a baseline
and a candidate timm tree when

- it is new (registered in the candidate only);
- its entry point moved, a pretrained cfg of one of its tags changed (or a tag came or
  went), or the arguments its entry point passes to build_model_with_cfg changed;
- a function its baseline fingerprint executed changed or vanished in the candidate (the
  candidate's hash read from its files, harness.models.source_index), and, when the
  candidate was traced too, a function the candidate executes differs from the baseline's;
- or it has no complete fingerprint (a trace that crashed or timed out): unknown means
  affected, never silently unaffected.

``brute_force_reasons`` is the reference the rule is checked against: both trees traced,
the executed functions (with each tree's own hashes) compared directly.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.models.source_index import SourceIndex

KINDS = ("new", "unknown", "entrypoint", "cfg", "kwargs", "code")


@dataclass(frozen=True)
class Side:
    label: str
    index: SourceIndex
    models: dict[str, dict]                                   # registry records (fingerprint registry)
    traces: dict[str, dict] = field(default_factory=dict)     # trace records of the models traced


@dataclass(frozen=True)
class Reason:
    kind: str
    detail: str
    functions: tuple[str, ...] = ()  # the changed function ids ('code')

    def to_json(self) -> dict:
        return {"kind": self.kind, "detail": self.detail, "functions": list(self.functions)}

    @staticmethod
    def from_json(data: dict) -> "Reason":
        return Reason(data["kind"], data["detail"], tuple(data.get("functions", ())))


def step_ids(record: dict) -> dict[str, set[str]]:
    """step -> the function ids it ran."""
    ids = record.get("ids", [])
    return {step: {ids[i] for i in positions} for step, positions in record.get("steps", {}).items()}


def families_of(record: dict, fid: str) -> list[str]:
    """The check families whose steps ran a function (step ids are '<family>:<step>')."""
    return sorted({step.split(":", 1)[0] for step, fids in step_ids(record).items() if fid in fids})


def _registry_reasons(name: str, base: Side, cand: Side) -> list[Reason]:
    b, c = base.models.get(name), cand.models.get(name)
    if c is None:
        return [Reason("removed", f"not registered in {cand.label}")]
    if b is None:
        return [Reason("new", f"new in {cand.label}")]
    reasons = []
    if b["entrypoint"] != c["entrypoint"]:
        reasons.append(Reason("entrypoint", f"entry point {b['entrypoint']} -> {c['entrypoint']}"))
    bc, cc = b["cfgs"], c["cfgs"]
    notes = [f"tag {t or '(default)'} added" for t in sorted(set(cc) - set(bc))]
    notes += [f"tag {t or '(default)'} removed" for t in sorted(set(bc) - set(cc))]
    for tag in sorted(set(bc) & set(cc)):
        keys = sorted(k for k in set(bc[tag]) | set(cc[tag]) if bc[tag].get(k) != cc[tag].get(k))
        if keys:
            notes.append(f"{tag or '(default)'}: {', '.join(keys)}")
    if notes:
        reasons.append(Reason("cfg", "pretrained cfg " + "; ".join(notes)))
    if b["build"] != c["build"]:
        reasons.append(Reason("kwargs", _kwargs_detail(b["build"], c["build"])))
    return reasons


def _kwargs_detail(b: dict, c: dict) -> str:
    if b.get("error") != c.get("error"):
        return f"entry point error {b.get('error') or 'none'!r} -> {c.get('error') or 'none'!r}"
    if len(b["calls"]) != len(c["calls"]):
        return f"{len(b['calls'])} -> {len(c['calls'])} build_model_with_cfg calls"
    for i, (x, y) in enumerate(zip(b["calls"], c["calls"])):
        keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
        if keys:
            return f"build_model_with_cfg arguments changed: {', '.join(keys)}" + (f" (call {i + 1})" if i else "")
    return "build_model_with_cfg arguments changed"


def _changed(record: dict, mine: SourceIndex, other: SourceIndex) -> list[str]:
    return [fid for fid in record.get("ids", []) if mine.function_hash(fid) != other.function_hash(fid)]


def _code_reason(record: dict, changed: list[str], other: SourceIndex, where: str) -> Reason:
    shown = []
    for fid in changed[:3]:
        state = "vanished" if other.function_hash(fid) is None else "changed"
        shown.append(f"{fid} {state} ({', '.join(families_of(record, fid))})")
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return Reason("code", f"{where}: " + "; ".join(shown) + more, tuple(changed))


def _incomplete(record: dict | None, side: Side) -> Reason | None:
    if record is None:
        return Reason("unknown", f"no fingerprint on {side.label}")
    if record.get("incomplete"):
        return Reason("unknown", f"fingerprint on {side.label} incomplete: {record['incomplete']}")
    return None


def reasons_for(name: str, base: Side, cand: Side, symmetric: bool = True) -> list[Reason]:
    """Why a model (registered in the candidate) is affected; [] when it is not."""
    reasons = _registry_reasons(name, base, cand)
    if reasons and reasons[0].kind in ("new", "removed"):
        return reasons
    record = base.traces.get(name)
    missing = _incomplete(record, base)
    if missing:
        return reasons + [missing]
    changed = _changed(record, base.index, cand.index)
    if changed:
        reasons.append(_code_reason(record, changed, cand.index, f"ran on {base.label}"))
    if symmetric and name in cand.traces:
        other = cand.traces[name]
        missing = _incomplete(other, cand)
        if missing:
            return reasons + [missing]
        also = [f for f in _changed(other, cand.index, base.index) if f not in set(changed)]
        if also:
            reasons.append(_code_reason(other, also, base.index, f"runs on {cand.label}"))
    return reasons


def brute_force_reasons(name: str, base: Side, cand: Side) -> list[Reason]:
    """The reference: both trees traced, the executed functions and their own hashes compared
    step by step (plus the registry reasons, which are the same for both methods)."""
    reasons = _registry_reasons(name, base, cand)
    if reasons and reasons[0].kind in ("new", "removed"):
        return reasons
    for side in (base, cand):
        missing = _incomplete(side.traces.get(name), side)
        if missing:
            return reasons + [missing]
    b, c = step_ids(base.traces[name]), step_ids(cand.traces[name])
    differing = []
    for step in sorted(set(b) | set(c)):
        fb = {f: base.index.function_hash(f) for f in b.get(step, ())}
        fc = {f: cand.index.function_hash(f) for f in c.get(step, ())}
        differing += [f for f in sorted(set(fb) | set(fc)) if fb.get(f) != fc.get(f)]
    if differing:
        differing = list(dict.fromkeys(differing))
        reasons.append(Reason("code", f"executed functions differ: {', '.join(differing[:3])}"
                                      + (f" and {len(differing) - 3} more" if len(differing) > 3 else ""),
                              tuple(differing)))
    return reasons


def top_functions(affected: dict[str, list[Reason]], n: int = 10) -> list[tuple[str, int]]:
    """The changed functions that affect the most models."""
    counts = Counter(f for reasons in affected.values() for r in reasons if r.kind == "code"
                     for f in set(r.functions))
    return counts.most_common(n)


def kind_counts(affected: dict[str, list[Reason]]) -> Counter:
    return Counter(r.kind for reasons in affected.values() for r in {x.kind: x for x in reasons}.values())
