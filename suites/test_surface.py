"""surface: ``python -W error -c "import timm"``, the deprecated alias modules, and the
registry and public API against each baseline release's registry dump in --compat-dir
(harness/checks/surface.py). Package-level: ids use the pseudo-model 'timm'
('timm-warnings_as_errors', 'timm-<baseline version>')."""
from pathlib import Path

import pytest

from harness.checks import surface
from harness.reports.notes import NOTE
from harness.weights import registry_dump

pytestmark = [pytest.mark.surface]


@pytest.fixture(scope="session")
def candidate_registry(tmp_path_factory) -> dict:
    return surface.candidate_dump(tmp_path_factory.mktemp("registry"))


def _baseline(baseline) -> dict:
    version, path = baseline
    try:
        return registry_dump.read(path)
    except registry_dump.RegistryDumpError as exc:
        pytest.fail(f"baseline timm {version}: {exc}", pytrace=False)


@pytest.mark.cases("surface_import")
def test_import(model_case, import_check, request):
    if import_check == "warnings_as_errors":
        surface.check_import_warnings()
    else:
        surface.check_deprecated_aliases(request.getfixturevalue("candidate_registry"))


@pytest.mark.cases("surface_baseline")
def test_registry(model_case, baseline, candidate_registry, request):
    base = _baseline(baseline)
    diff = surface.check_registry(base, candidate_registry)
    report_dir = request.config.getoption("--report-dir")
    report = Path(report_dir) / f"registry-diff-{baseline[0]}.md" if report_dir else None
    request.node.user_properties.append((NOTE, surface.describe_changes(diff, base, candidate_registry, report)))


@pytest.mark.cases("surface_baseline")
def test_public_api(model_case, baseline, candidate_registry):
    surface.check_public_api(_baseline(baseline), candidate_registry)
