"""transforms: torch.compile (eager/aot_eager backends on the CPU, graph breaks against
expected/graph_breaks.json; inductor on CUDA), torch.jit.script and FX tracing where timm
claims them, channels_last, batch invariance and gradient checkpointing, each against
eager within the model's own float64-derived budget (harness/checks/transforms.py).
Ids: '<model>-<transform>'. Models over --max-params are skipped: the checks need weights."""
import json
from pathlib import Path

import pytest

from harness.checks.transforms import GraphBreaks, TransformSkip, check_transform
from harness.reports.notes import GRAPH_BREAKS, NOTE

pytestmark = [pytest.mark.transforms, pytest.mark.cases("transforms")]


@pytest.fixture(scope="session")
def graph_breaks(pytestconfig) -> GraphBreaks | None:
    """The recorded counts; None on an --update-graph-breaks run (count, do not compare)."""
    if pytestconfig.getoption("--update-graph-breaks"):
        return None
    return GraphBreaks.load(Path(pytestconfig.getoption("--graph-breaks-file")))


def test_transform(model_case, transform, device, graph_breaks, request):
    if device == "meta":
        pytest.skip(f"over --max-params ({model_case.facts.param_count:,} parameters): transforms need real weights")
    try:
        result = check_transform(model_case.model, model_case.facts.input_size, transform, graph_breaks)
    except TransformSkip as exc:
        pytest.skip(str(exc))
    if graph_breaks is None and result.graph_breaks is not None:
        request.node.user_properties.append((GRAPH_BREAKS, json.dumps({model_case.model: result.graph_breaks})))
    request.node.user_properties += [(NOTE, note) for note in result.notes]
