"""The static half of change-aware selection (harness.models.source_index): which edits
change a function's hash. Each test plants one edit in a small timm-like tree and checks
that the functions it can change, and only those, hash differently; the tracing half is in
tests/test_affected.py."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.models.source_index import SourceIndex, tree_digest

LAYERS_INIT = "from .mlp import Mlp, GluMlp\nfrom .helpers import to_2tuple\n"
MLP = '''
"""Mlp layers."""
from torch import nn
from .helpers import to_2tuple

_EPS = 1e-6


class Mlp(nn.Module):
    """An MLP."""
    fused: bool = False

    def __init__(self, dim, act_layer=nn.GELU):
        super().__init__()
        self.dims = to_2tuple(dim)

    def forward(self, x):
        # a comment
        x = self.fc1(x)
        return x + _EPS


class GluMlp(Mlp):
    def extra(self):
        return 1
'''
HELPERS = '''
def _ntuple(n):
    def parse(x):
        return tuple([x] * n)
    return parse


to_2tuple = _ntuple(2)
'''
MODEL = '''
from timm.layers import Mlp
from ._builder import build_model_with_cfg

model_cfgs = dict(a=dict(depth=2), b=dict(depth=3))


def _create(variant, **kwargs):
    return build_model_with_cfg(Mlp, variant, model_cfg=model_cfgs[variant], **kwargs)


def unrelated():
    return 1
'''


def write_tree(root: Path, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A tree timm/{layers/{__init__,mlp,helpers}.py, models/toy.py}; ``edits`` maps a file
    to (old, new) text replaced in it."""
    files = {"timm/__init__.py": "", "timm/layers/__init__.py": LAYERS_INIT, "timm/layers/mlp.py": MLP,
             "timm/layers/helpers.py": HELPERS, "timm/models/__init__.py": "", "timm/models/toy.py": MODEL,
             "timm/models/_builder.py": "def build_model_with_cfg(cls, variant, **kw):\n    return cls(**kw)\n"}
    for rel, text in files.items():
        text = textwrap.dedent(text)
        if edits and rel in edits:
            old, new = edits[rel]
            assert old in text, (rel, old)
            text = text.replace(old, new)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def changed(tmp_path: Path, edits: dict[str, tuple[str, str]], ids: list[str]) -> list[str]:
    a = SourceIndex(write_tree(tmp_path / "a"))
    b = SourceIndex(write_tree(tmp_path / "b", edits))
    return [fid for fid in ids if a.function_hash(fid) != b.function_hash(fid)]


IDS = ["timm.layers.mlp:Mlp.forward", "timm.layers.mlp:Mlp.__init__", "timm.layers.mlp:GluMlp.extra",
       "timm.layers.mlp:GluMlp~forward", "timm.layers.helpers:_ntuple", "timm.models.toy:_create",
       "timm.models.toy:unrelated"]


def test_identical_trees_hash_alike(tmp_path):
    assert changed(tmp_path, {}, IDS) == []
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_docstrings_and_comments_do_not_count(tmp_path):
    edits = {"timm/layers/mlp.py": ('    def forward(self, x):\n        # a comment\n',
                                    '    def forward(self, x):\n        """Now documented."""\n        # another\n\n')}
    assert changed(tmp_path, edits, IDS) == []


def test_a_neutral_statement_changes_that_function_only(tmp_path):
    edits = {"timm/layers/mlp.py": ("        x = self.fc1(x)\n", "        x = x\n        x = self.fc1(x)\n")}
    assert changed(tmp_path, edits, IDS) == ["timm.layers.mlp:Mlp.forward"]


def test_module_data_a_function_reads(tmp_path):
    edits = {"timm/layers/mlp.py": ("_EPS = 1e-6", "_EPS = 1e-5")}
    assert changed(tmp_path, edits, IDS) == ["timm.layers.mlp:Mlp.forward"]


def test_class_context_counts_for_every_method(tmp_path):
    edits = {"timm/layers/mlp.py": ("    fused: bool = False", "    fused: bool = True")}
    assert changed(tmp_path, edits, IDS) == ["timm.layers.mlp:Mlp.forward", "timm.layers.mlp:Mlp.__init__"]


def test_a_new_override_changes_the_dispatch_of_subclasses(tmp_path):
    edits = {"timm/layers/mlp.py": ("    def extra(self):", "    def forward(self, x):\n        return x\n\n"
                                                            "    def extra(self):")}
    assert changed(tmp_path, edits, IDS) == ["timm.layers.mlp:GluMlp~forward"]


def test_rebinding_an_import_changes_every_function_that_loads_the_name(tmp_path):
    """``from .mlp import Mlp`` in timm.layers pointing elsewhere changes what ``Mlp`` means
    in every module that imports it from timm.layers."""
    edits = {"timm/layers/__init__.py": ("from .mlp import Mlp, GluMlp", "from .mlp import GluMlp\n"
                                                                        "from .mlp import GluMlp as Mlp")}
    assert changed(tmp_path, edits, IDS) == ["timm.models.toy:_create"]


def test_import_time_calls_bind_the_source_they_run(tmp_path):
    """``to_2tuple = _ntuple(2)`` runs _ntuple at import time: no trace sees it, so the
    functions that load to_2tuple depend on _ntuple's source."""
    edits = {"timm/layers/helpers.py": ("return tuple([x] * n)", "return tuple([x] * (n + 1))")}
    assert changed(tmp_path, edits, IDS) == ["timm.layers.mlp:Mlp.__init__", "timm.layers.helpers:_ntuple"]


def test_model_tables_change_their_readers(tmp_path):
    edits = {"timm/models/toy.py": ("b=dict(depth=3)", "b=dict(depth=4)")}
    assert changed(tmp_path, edits, IDS) == ["timm.models.toy:_create"]


def test_vanished_functions_hash_to_none(tmp_path):
    edits = {"timm/models/toy.py": ("def unrelated():\n    return 1\n", "")}
    b = SourceIndex(write_tree(tmp_path / "b", edits))
    assert b.function_hash("timm.models.toy:unrelated") is None
    assert b.function_hash("timm.models.toy:_create") is not None


def test_locate_maps_code_to_its_outermost_def(tmp_path):
    index = SourceIndex(write_tree(tmp_path / "a"))
    assert index.locate("timm.layers.helpers", "_ntuple.<locals>.parse", 3) == "timm.layers.helpers:_ntuple"
    assert index.locate("timm.layers.mlp", "Mlp.forward", 17) == "timm.layers.mlp:Mlp.forward"
    assert index.locate("timm.layers.helpers", None, 3) == "timm.layers.helpers:_ntuple"  # Python 3.10: by line


def test_the_cache_returns_what_was_computed(tmp_path):
    root = write_tree(tmp_path / "a")
    first = SourceIndex(root, cache=tmp_path / "index.json")
    expected = {fid: first.function_hash(fid) for fid in IDS}
    first.save()
    again = SourceIndex(root, cache=tmp_path / "index.json")
    assert again._stored == expected  # served from the file, nothing parsed
    assert {fid: again.function_hash(fid) for fid in IDS} == expected


def test_a_folder_without_timm_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no timm/ package"):
        SourceIndex(tmp_path)


def test_functions_that_look_at_the_meta_device_are_flagged(tmp_path):
    """timm 1.0.23 skipped reset_parameters on meta (`if not self.proj.weight.is_meta:`): a
    trace on meta does not stand for the CPU there."""
    edits = {"timm/layers/mlp.py": ("        self.dims = to_2tuple(dim)\n",
                                    "        self.dims = to_2tuple(dim)\n        if not self.fc1.weight.is_meta:\n"
                                    "            self.reset()\n")}
    index = SourceIndex(write_tree(tmp_path / "b", edits))
    assert index.meta_sensitive("timm.layers.mlp:Mlp.__init__")
    assert not index.meta_sensitive("timm.layers.mlp:Mlp.forward")
