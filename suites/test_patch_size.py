"""patch_size: each pretrained tag's checkpoint family loads with the original geometry,
a larger patch_size and a smaller img_size; untouched tensors equal the source, patch and
position embeddings take the new shapes, the patch embedding is the PI-resize of the
checkpoint's, and the forward is finite with the right shape. Models over --max-params:
the changed geometries' shapes on the meta device."""
from pathlib import Path

import pytest

from harness.checks.patch_size import UnsupportedLayout, check_patch_case, make_patch_source
from harness.models import checkpoint_sources
from harness.plugin import collection

pytestmark = [pytest.mark.patch_size, pytest.mark.cases("patch_size")]


@pytest.fixture(scope="module", autouse=True)
def _family_report(pytestconfig):
    """With --report-dir: checkpoint_families.md, family -> tags -> models of the selection."""
    report_dir = pytestconfig.getoption("--report-dir")
    if report_dir:
        rows = checkpoint_sources.all_tag_families(collection.selected_names(pytestconfig))
        path = Path(report_dir) / "checkpoint_families.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{id(rows)}.tmp")  # xdist workers write the same text
        tmp.write_text(checkpoint_sources.family_table(rows) + "\n")
        tmp.replace(path)


@pytest.fixture(scope="session")
def _patch_sources() -> dict:
    return {}


@pytest.fixture
def patch_source(model_case, patch_case, device, _patch_sources, tmp_path_factory):
    """The tag's checkpoint in its family's layout, written once per worker, tag and family."""
    if device == "meta":
        return None
    key = (patch_case.tag, patch_case.family)
    known = _patch_sources.get(key)
    if known is None or not isinstance(known, UnsupportedLayout) and not known.path.exists():
        _patch_sources.clear()  # one source in memory at a time
        try:
            _patch_sources[key] = make_patch_source(*key, Path(tmp_path_factory.getbasetemp()) / "families")
        except UnsupportedLayout as exc:
            _patch_sources[key] = exc
    source = _patch_sources[key]
    if isinstance(source, UnsupportedLayout):
        pytest.skip(f"{patch_case.family} layout cannot hold {patch_case.tag}: {source}")
    return source


def test_patch_size(model_case, patch_case, device, patch_source):
    check_patch_case(patch_case, device, patch_source)
