"""An xdist scheduler that keeps each model's tests on one worker (``--group-models``):
the scope of a test is its model, the first part of its parameter id, so a model is
built and its checkpoint written once per worker and shared by all its checks, across
suites. A crashed test is not re-run: the rest of its model goes on on another worker."""
from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

from harness.registry.test_ids import model_of


class ModelScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return model_of(nodeid)

    def remove_node(self, node):
        """LoadScopeScheduling.remove_node, except that the crashed test is marked done
        before its unit is re-queued (LoadScope would run it again, crashing again)."""
        workload = self.assigned_work.pop(node)
        if not self._pending_of(workload):
            return None
        crashitem = next(nid for unit in workload.values() for nid, done in unit.items() if not done)
        for unit in workload.values():
            if crashitem in unit:
                unit[crashitem] = True
        self.workqueue.update({scope: unit for scope, unit in workload.items() if not all(unit.values())})
        for other in self.assigned_work:
            self._reschedule(other)
        return crashitem
