"""Suite fixtures. Parameters come from each test's named parametrizer
(harness.plugin.parametrize), markers and known issues from harness.plugin.collection;
the fixtures here give each test its device, working directory and shared checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from harness.checks.pretrained import SourceCheckpoint, make_source
from harness.plugin import collection, parametrize, sweep
from harness.plugin.options import HarnessOptions


def pytest_configure(config: pytest.Config) -> None:
    collection.selected_names(config)  # a bad --models is a usage error before collection
    collection.compat_sets(config)  # so is a missing or malformed --compat-dir
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        collection.model_cases(config)  # xdist controller: gather facts once, workers read the cache
        collection.gather_capabilities(config)  # likewise the capabilities the create/reset cases need
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # one intra-op pool per worker, not one per core per worker
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize.generate_tests(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    collection.drop_empty_parametrizations(config, items)
    collection.keep_smoke_scope(config, items)
    collection.keep_run_scope(config, items)
    collection.apply_markers(config, items)
    collection.apply_intended_changes(config, items)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    collection.enforce_known_issue_match(item, call, outcome.get_result())


@pytest.fixture(scope="session")
def harness_options(pytestconfig: pytest.Config) -> HarnessOptions:
    return HarnessOptions.from_config(pytestconfig)


@pytest.fixture
def device(model_case: collection.ModelCase, harness_options: HarnessOptions) -> str:
    """'meta' for structural-only models; the requested device otherwise (skips cleanly
    when CUDA is asked for and absent)."""
    if not model_case.numeric:
        return "meta"
    if harness_options.device == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda: CUDA is not available on this machine")
    return harness_options.device


@pytest.fixture
def capabilities(model_case: collection.ModelCase, pytestconfig: pytest.Config):
    """The model's discovered capabilities (harness.models.capabilities), from the cache."""
    return collection.case_capabilities(pytestconfig, model_case)


@pytest.fixture(scope="session")
def _sources() -> dict:
    return {}


@pytest.fixture(scope="session")
def _disk_state() -> dict:
    return {}


@pytest.fixture(autouse=True)
def _one_model_on_disk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       _disk_state: dict) -> None:
    """The previous model's cached files go when a grouped worker starts the next model."""
    case = getattr(getattr(request.node, "callspec", None), "params", {}).get("model_case")
    sweep.free_previous_model(Path(tmp_path_factory.getbasetemp()), _disk_state,
                              getattr(case, "model", None), bool(request.config.getoption("--group-models", False)))


@pytest.fixture
def source_checkpoint(model_case: collection.ModelCase, device: str, _sources: dict,
                      tmp_path_factory: pytest.TempPathFactory) -> SourceCheckpoint:
    """The model's deterministic checkpoint, written once per worker and model."""
    key = (model_case.model, device)
    if key not in _sources or not all(Path(f).exists() for f in _sources[key].files.values()):
        workdir = Path(tmp_path_factory.getbasetemp()) / "checkpoints"
        _sources.clear()  # keep one model's tensors in memory at a time
        _sources[key] = make_source(model_case.model, device, workdir, model_case.facts.input_size)
    return _sources[key]
