"""Which timm functions a piece of code executes: a ``sys.settrace`` hook on 'call' events
only (no line events), keeping the code objects whose file lies in the traced timm tree.

Python 3.11 has no ``sys.monitoring``; a call-only trace function costs about as much as
coverage.py's C tracer here (both roughly double a meta-device build, most of it in torch's
own Python frames) and gives the code objects themselves, so ids are exact: the module
from the file, the qualname from ``co_qualname``.

Methods also record the runtime class of ``self``: when ``Mlp.forward`` runs for a
``SwiGLUPacked`` (a subclass), the trace adds ``timm.layers.mlp:SwiGLUPacked~forward``, so a
later release that gives SwiGLUPacked its own ``forward`` changes the fingerprint even though
no function that ran before changed (harness.models.source_index, dispatch ids).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import CodeType

from harness.models.source_index import PACKAGE, SourceIndex, module_name


class Recorder:
    """Context manager: the timm code objects executed inside it (and, for methods, the
    classes of ``self``). Re-entrant across steps: ``ids()`` maps what was seen so far."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.prefix = str(self.root / PACKAGE) + os.sep
        self.codes: set[CodeType] = set()
        self.receivers: set[tuple[CodeType, type]] = set()
        self._previous = None

    def _trace(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename.startswith(self.prefix):
            self.codes.add(code)
            if code.co_argcount and code.co_varnames[0] == "self":
                self.receivers.add((code, type(frame.f_locals.get("self"))))
        return None

    def __enter__(self) -> "Recorder":
        self._previous = sys.gettrace()
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(self._previous)

    def clear(self) -> None:
        self.codes.clear()
        self.receivers.clear()

    def ids(self, index: SourceIndex) -> set[str]:
        """Function ids (and dispatch ids) of what ran, located in ``index`` (the same tree)."""
        located: dict[CodeType, str | None] = {}
        for code in self.codes:
            module = module_name(self.root, Path(code.co_filename))
            located[code] = index.locate(module, getattr(code, "co_qualname", None), code.co_firstlineno)
        found = {fid for fid in located.values() if fid is not None}
        for code, receiver in self.receivers:
            fid = located.get(code)
            qual = fid.split(":", 1)[1] if fid else ""
            if not (qual == getattr(code, "co_qualname", None) or qual.endswith("." + code.co_name)):
                continue  # code nested in a method, not the method itself
            found |= dispatch_ids(fid, receiver)
        return found


def dispatch_ids(method_id: str, receiver: type) -> set[str]:
    """'<module>:<Class>~<method>' for each timm class of the receiver's MRO that comes
    before the class defining the method (they inherit it today; they could override it)."""
    module, qual = method_id.split(":", 1)
    if "." not in qual:
        return set()
    owner, method = qual.rsplit(".", 1)
    out = set()
    for cls in getattr(receiver, "__mro__", ()):
        if (cls.__module__, cls.__qualname__) == (module, owner):
            return out
        if cls.__module__.split(".")[0] == PACKAGE and "<locals>" not in cls.__qualname__:
            out.add(f"{cls.__module__}:{cls.__qualname__}~{method}")
    return set()  # the defining class is not in the MRO: a method called on something else


@contextlib.contextmanager
def untraced():
    """Harness work inside a traced step that runs no timm code the check does not also run
    outside it (``copy.deepcopy`` of a built model: 4 million Python calls, each a trace
    event, 60% of a reset step's time)."""
    previous = sys.gettrace()
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(previous)
