"""A static index of a timm source tree, read from its files (never imported), so one
process can hash the functions of two timm versions side by side.

Each function or method has an id, ``<module>:<qualname>`` (``timm.layers.mlp:Mlp.forward``;
a function nested in another belongs to the outer one), and a hash of what decides its
behaviour:

- its AST with docstrings and every other bare string statement removed (comments are not
  in the AST, nor are line numbers), decorators, defaults and annotations included;
- for a method, the context of its classes: bases, keywords, decorators and the class-level
  statements that are not methods (``fused_attn: Final[bool]``, ``forward = _impl``);
- the module-level binding of every global name it loads: a def or class by identity
  (``def:timm.layers.mlp:Mlp``: if it runs, it is traced and compared on its own), an
  import by where it resolves (``from .mlp import Mlp`` changing to ``.mlp2`` changes every
  function that loads ``Mlp``), a data statement by its AST and, recursively, the bindings
  it loads (``model_cfgs = dict(...)``, ``_int_tuple_2 = _ntuple(2)``). Expressions that run
  at import time (decorators, defaults, bases, class bodies, data statements) bind the
  *source* of the functions they call, since no trace sees those calls; so do functions
  decorated with ``torch.jit.script`` (they run as TorchScript, not as Python frames).

Dispatch: ``<module>:<Class>~<method>`` stands for "an instance of Class runs an inherited
method": its hash covers Class's context and whether Class now defines the method itself,
so a new override in a subclass changes it (see harness.models.tracing).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "timm"


def python_files(root: Path) -> list[Path]:
    """The .py files of root/timm, sorted."""
    return sorted(p for p in (root / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)


def tree_digest(root: Path) -> str:
    """sha256 over the relative path and contents of every .py file of root/timm: the
    identity of a source tree (a release or a checkout being edited)."""
    digest = hashlib.sha256()
    for path in python_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _StripStrings(ast.NodeTransformer):
    """Remove docstrings and other bare string statements (no runtime effect)."""

    def generic_visit(self, node):
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                and isinstance(s.value.value, str))]
                if not kept and name == "body":
                    kept = [ast.Pass()]
                setattr(node, name, kept)
        return node


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=True, include_attributes=False)


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def _loaded_names(nodes) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _is_def(node) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))


def _is_jit(node) -> bool:
    """Decorated with torch.jit.script (or script_if_tracing): runs as TorchScript."""
    return any("script" in _dump(d) for d in getattr(node, "decorator_list", ()))


def _import_time_parts(node) -> list[ast.AST]:
    """The parts of a def that are evaluated when its module is imported."""
    args = node.args
    return [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None)]


@dataclass
class _Class:
    qualname: str
    context: list[ast.AST]        # decorators, bases, keywords, non-def body statements
    methods: set[str]


@dataclass
class _Module:
    name: str
    is_package: bool
    tree: ast.Module
    bindings: dict[str, list] = field(default_factory=dict)   # name -> [("def"|"class"|"import"|"module"|"stmt", ...)]
    star: list[str] = field(default_factory=list)             # modules imported with *
    defs: dict[str, list] = field(default_factory=dict)       # qualname -> [(node, [enclosing _Class])]
    classes: dict[str, _Class] = field(default_factory=dict)  # qualname -> _Class
    statements: list[tuple[int, int, str]] = field(default_factory=list)  # (first, last line, id) of data statements


class SourceIndex:
    """Hashes of the functions of one timm tree. Modules are parsed when first needed and
    hashes memoized, on disk too when ``cache`` names a JSON file (keyed by the tree's
    digest and the Python version, whose AST the hashes are of)."""

    def __init__(self, root: Path, cache: Path | None = None):
        self.root = Path(root)
        self.paths = {module_name(self.root, p): p for p in python_files(self.root)}
        if not self.paths:
            raise FileNotFoundError(f"{self.root} holds no {PACKAGE}/ package with Python files")
        self._parsed: dict[str, _Module | None] = {}
        self._active: set = set()
        self.cache = cache
        self._stored: dict[str, str | None] = {}
        if cache is not None and cache.is_file():
            try:
                self._stored = json.loads(cache.read_text())
            except (OSError, ValueError):
                self._stored = {}
        self._dirty = False

    def save(self) -> None:
        """Write the memoized hashes (atomically) where ``cache`` says."""
        if self.cache is None or not self._dirty:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._stored, sort_keys=True))
        tmp.replace(self.cache)
        self._dirty = False

    def _mod(self, name: str) -> _Module | None:
        if name not in self._parsed:
            path = self.paths.get(name)
            module = None
            if path is not None:
                try:
                    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
                except SyntaxError:  # unparsable: its functions read as vanished, so as changed
                    tree = None
                if tree is not None:
                    module = _Module(name, path.name == "__init__.py", _StripStrings().visit(tree))
                    self._collect(module, tree.body)
            self._parsed[name] = module
        return self._parsed[name]

    # ------------------------------------------------------------------ collection
    def _collect(self, module: _Module, body: list, prefix: str = "", classes: tuple = ()) -> None:
        for stmt in body:
            if _is_def(stmt):
                qual = prefix + stmt.name
                module.defs.setdefault(qual, []).append((stmt, list(classes)))
                if not classes:
                    module.bindings.setdefault(stmt.name, []).append(("def", qual, stmt))
            elif isinstance(stmt, ast.ClassDef):
                qual = prefix + stmt.name
                context = [*stmt.decorator_list, *stmt.bases, *stmt.keywords]
                context += [s for s in stmt.body if not (_is_def(s) or isinstance(s, ast.ClassDef))]
                info = _Class(qual, context, {s.name for s in stmt.body if _is_def(s)})
                module.classes[qual] = info
                if not classes:
                    module.bindings.setdefault(stmt.name, []).append(("class", qual, stmt))
                self._collect(module, stmt.body, qual + ".", (*classes, info))
            elif classes:
                continue  # class-level statements are in the class context
            elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)) or \
                    type(stmt).__name__ == "TryStar":
                self._bind_statement(module, stmt, header_only=True)
                for name in ("body", "orelse", "finalbody"):
                    self._collect(module, getattr(stmt, name, []) or [])
                for handler in getattr(stmt, "handlers", []) or []:
                    self._collect(module, handler.body)
            elif isinstance(stmt, ast.ImportFrom):
                target = self._resolve_relative(module, stmt)
                for alias in stmt.names:
                    if alias.name == "*":
                        module.star.append(target)
                    else:
                        module.bindings.setdefault(alias.asname or alias.name, []).append(
                            ("import", target, alias.name))
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    module.bindings.setdefault(bound, []).append(
                        ("module", alias.name if alias.asname else alias.name.split(".")[0]))
            else:
                self._bind_statement(module, stmt)

    def _bind_statement(self, module: _Module, stmt: ast.stmt, header_only: bool = False) -> None:
        """A data statement binds every name it stores (targets of =, +=, for, with, ...)."""
        node = stmt
        if header_only:  # if/for/with: the header binds (for/with targets); bodies are collected
            node = getattr(stmt, "target", None) or ast.Tuple(
                elts=[i.optional_vars for i in getattr(stmt, "items", []) if i.optional_vars], ctx=ast.Store())
        names = sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)})
        for name in names:
            module.bindings.setdefault(name, []).append(("stmt", stmt))
        if not header_only:
            sid = f"{module.name}:=" + (",".join(names) or f"@{len(module.statements)}")
            module.statements.append((stmt.lineno, getattr(stmt, "end_lineno", stmt.lineno), sid))

    def _resolve_relative(self, module: _Module, stmt: ast.ImportFrom) -> str:
        if not stmt.level:
            return stmt.module or ""
        base = module.name.split(".")
        if not module.is_package:
            base = base[:-1]
        base = base[:len(base) - (stmt.level - 1)]
        return ".".join(base + ([stmt.module] if stmt.module else []))

    # ------------------------------------------------------------------ bindings
    @functools.lru_cache(maxsize=None)
    def _binding(self, module: str, name: str, deep: bool = False) -> str | None:
        """What a global name of a module is bound to, as a comparable string; None for a
        name the module does not bind (a builtin or a local)."""
        mod = self._mod(module)
        if mod is None:
            return f"ext:{module}.{name}"
        key = (module, name, deep)
        if key in self._active:
            return f"cycle:{module}:{name}"
        self._active.add(key)
        try:
            records = mod.bindings.get(name)
            if records is None:
                for star in mod.star:
                    if star not in self.paths:
                        continue
                    found = self._binding(star, name, deep) if self._exports(star, name) else None
                    if found is not None:
                        return found
                return None
            return "|".join(self._describe(mod, name, r, deep) for r in records)
        finally:
            self._active.discard(key)

    def _exports(self, module: str, name: str) -> bool:
        mod = self._mod(module)
        for _, stmt in (r for r in mod.bindings.get("__all__", []) if r[0] == "stmt"):
            value = getattr(stmt, "value", None)
            if isinstance(value, (ast.List, ast.Tuple)):
                return name in {e.value for e in value.elts if isinstance(e, ast.Constant)}
        return not name.startswith("_")

    def _describe(self, mod: _Module, name: str, record: tuple, deep: bool) -> str:
        kind = record[0]
        if kind == "def":
            node = record[2]
            if deep or _is_jit(node):
                return f"src:{mod.name}:{record[1]}:" + _sha(_dump(node))
            return f"def:{mod.name}:{record[1]}"
        if kind == "class":
            return f"class:{mod.name}:{record[1]}"
        if kind == "module":
            return f"module:{record[1]}" if record[1] in self.paths else f"ext:{record[1]}"
        if kind == "import":
            target, original = record[1], record[2]
            if f"{target}.{original}" in self.paths:
                return f"module:{target}.{original}"
            if target in self.paths:
                return self._binding(target, original, deep) or f"missing:{target}:{original}"
            return f"ext:{target}.{original}"
        stmt = record[1]
        deps = sorted(f"{n}={self._binding(mod.name, n, True)}" for n in _loaded_names([stmt]) - {name})
        return "data:" + _sha(_dump(stmt), *deps)

    # ------------------------------------------------------------------ hashes
    def function_hash(self, func_id: str) -> str | None:
        """The hash of a function or method id (None: it does not exist in this tree)."""
        if func_id not in self._stored:
            self._stored[func_id] = self._function_hash(func_id)
            self._dirty = True
        return self._stored[func_id]

    def _function_hash(self, func_id: str) -> str | None:
        module, _, qual = func_id.partition(":")
        mod = self._mod(module)
        if mod is None:
            return None
        if "~" in qual:
            return self._dispatch_hash(mod, *qual.split("~", 1))
        if qual.startswith("="):  # a module-level statement (a lambda or generator expression in it ran)
            if not any(sid == func_id for _, _, sid in mod.statements) or qual.startswith("=@"):
                return None
            return _sha(*(f"{n}={self._binding(module, n, True)}" for n in qual[1:].split(",")))
        if qual in mod.classes and qual not in mod.defs:
            return self._class_hash(mod, qual)
        entries = mod.defs.get(qual)
        if not entries:
            return None
        parts = []
        for node, classes in entries:
            parts.append(_dump(node))
            eager = _import_time_parts(node)
            for info in classes:
                parts.append(self._class_hash(mod, info.qualname))
            names = _loaded_names([node]) - _loaded_names(eager)
            parts += sorted(f"{n}={self._binding(module, n)}" for n in names)
            parts += sorted(f"{n}={self._binding(module, n, True)}" for n in _loaded_names(eager))
        return _sha(*parts)

    def _class_hash(self, mod: _Module, qual: str) -> str:
        info = mod.classes[qual]
        parts = [_dump(n) for n in info.context]
        parts += sorted(f"{n}={self._binding(mod.name, n, True)}" for n in _loaded_names(info.context))
        return _sha(*parts)

    def _dispatch_hash(self, mod: _Module, cls: str, method: str) -> str | None:
        if cls not in mod.classes:
            return None
        return _sha(self._class_hash(mod, cls), f"defines={method in mod.classes[cls].methods}")

    # ------------------------------------------------------------------ locating code
    def locate(self, module: str, qualname: str | None, firstlineno: int) -> str | None:
        """The id a code object (module, co_qualname, co_firstlineno) of this tree belongs
        to: the outermost named def of its qualname, its class for class-level code, the
        data statement holding a module-level lambda or generator expression. Without a
        qualname (Python 3.10 has no co_qualname) the line decides."""
        mod = self._mod(module)
        if mod is None:
            return None
        if qualname is None:
            return self._locate_line(mod, firstlineno)
        parts = []
        for part in qualname.split("."):
            if part == "<locals>" or part.startswith("<"):
                break
            parts.append(part)
        qual = ".".join(parts)
        if qual in mod.defs or qual in mod.classes:
            return f"{module}:{qual}"
        if not qual:  # module-level lambda / comprehension: the statement that holds it
            for first, last, sid in mod.statements:
                if first <= firstlineno <= last:
                    return sid
        return None

    def _locate_line(self, mod: _Module, line: int) -> str | None:
        for qual, entries in mod.defs.items():
            for node, _ in entries:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if first <= line <= node.end_lineno:
                    return f"{mod.name}:{qual}"
        for first, last, sid in mod.statements:
            if first <= line <= last:
                return sid
        return None

    def meta_sensitive(self, func_id: str) -> bool:
        """Whether a function looks at the meta device (``.is_meta``, ``is_meta_device``, the
        string 'meta'): its path there may differ from the CPU's (timm 1.0.23 skipped
        ``reset_parameters`` on meta), so a trace on meta does not stand for the CPU."""
        module, _, qual = func_id.partition(":")
        mod = self._mod(module)
        for node, _ in (mod.defs.get(qual, []) if mod else []):
            for n in ast.walk(node):
                if isinstance(n, ast.Attribute) and n.attr in ("is_meta", "is_meta_device") or \
                        isinstance(n, ast.Name) and n.id == "is_meta_device" or \
                        isinstance(n, ast.Constant) and n.value == "meta":
                    return True
        return False

    def defines(self, func_id: str) -> bool:
        return self.function_hash(func_id) is not None

    # ------------------------------------------------------------------ static calls
    def referenced_functions(self, func_id: str) -> set[str]:
        """Function ids a function names (directly or through imports), transitively: the
        static over-approximation used for code a trace cannot reach (a checkpoint
        conversion that runs only for another file layout)."""
        seen: set[str] = set()
        todo = [func_id]
        while todo:
            fid = todo.pop()
            if fid in seen:
                continue
            seen.add(fid)
            module, _, qual = fid.partition(":")
            mod = self._mod(module)
            for node, _ in (mod.defs.get(qual, []) if mod else []):
                for name in _loaded_names([node]):
                    target = self._binding(module, name)
                    if target and target.startswith(("def:", "src:")):
                        todo.append(":".join(target.split(":")[1:3]))
        return seen
