"""The layout of harness/: subpackages by role, imports only downwards (the layers contract
in pyproject.toml, checked by import-linter), no import cycle between any two modules
(function-level imports included), and a registry that is data only."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("registry", "models", "weights", "checks", "reports", "plugin")
# what registry modules may import: the standard library only (data, no torch, no timm)
STDLIB = set(sys.stdlib_module_names)
ALLOWED = {"harness", "packaging"}  # packaging: the version specifiers of known issues


def _graph(external: bool = False) -> grimp.ImportGraph:
    return grimp.build_graph("harness", include_external_packages=external, cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_subpackages_by_role():
    for name in SUBPACKAGES:
        assert (ROOT / "harness" / name / "__init__.py").is_file(), name
    flat = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "cli.py"], f"modules outside the subpackages: {flat}"


def test_imports_follow_the_layers():
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_import_cycles():
    graph = _graph()
    graph.remove_module("harness")  # the package's __init__ is the namespace, not a dependency
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_registry_is_data_only():
    graph = _graph(external=True)
    bad = {}
    for module in graph.modules:
        if module.startswith("harness.registry"):
            imported = {m.split(".")[0] for m in graph.find_modules_directly_imported_by(module)}
            extra = sorted(imported - STDLIB - ALLOWED)
            harness_deps = sorted(m for m in graph.find_modules_directly_imported_by(module)
                                  if m.startswith("harness.") and not m.startswith("harness.registry"))
            if extra or harness_deps:
                bad[module] = extra + harness_deps
    assert not bad, f"registry modules import more than the standard library and the registry: {bad}"


def test_cycle_finder_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]
