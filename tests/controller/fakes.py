"""Fake service clients for controller tests: scripted answers, recorded calls, optional failures."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from services.controller.cycle import Reply, Solved
from services.core import model as m

SERVER = m.Server(name="Premium-llama_13b", service_class="Premium", model="llama_13b",
                  current=m.Allocation(accelerator="G2", num_replicas=1, load=m.Load(60, 128, 1024)),
                  observed=m.ObservedMetrics(itl_ms=30.0, ttft_ms=400.0, source="prometheus"))
MANAGED = m.ManagedServer(SERVER, m.KubeRef("llm", "llama-13b"), spec_replicas=1, ready_replicas=1)
STATIC = m.SystemData(
    accelerators=(m.Accelerator("G2", "G2", cost_per_hour=23.0),),
    models=(m.ModelPerf("llama_13b", "G2", 1, 38, 1024, m.PerfParms(17.0, 0.03, 0.001)),),
    service_classes=(m.ServiceClass("Premium", 1, (m.ModelTarget("llama_13b", 80.0, 1000.0),)),))
CAPACITY = m.Capacity({"G2": 8})


@dataclass
class FakeClients:
    """Answers like the three services; ``fail`` maps a method name to the exception it raises."""

    collection: m.Collection = field(default_factory=lambda: m.Collection((MANAGED,)))
    solution: m.Solution = field(default_factory=lambda: m.Solution(
        {"Premium-llama_13b": m.Allocation("G2", 3, 38, 69.0, 36.4, 425.2, m.Load(60, 128, 1024))}))
    fail: dict[str, Exception] = field(default_factory=dict)
    current: dict[str, m.Prediction] = field(default_factory=dict)
    actuate_s: float = 0.0
    calls: list[str] = field(default_factory=list)
    systems: list[m.SystemData] = field(default_factory=list)
    notices: list[list[m.Notice]] = field(default_factory=list)
    collected_with: list[tuple[m.SystemData, str]] = field(default_factory=list)
    active: int = 0
    overlaps: int = 0
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def collect(self, static: m.SystemData, window: str = "") -> Reply[m.Collection]:
        self._enter("collect")
        self.collected_with.append((static, window))
        return Reply(self.collection)

    def optimize(self, system: m.SystemData, collected: Reply[m.Collection]) -> Reply[Solved]:
        self._enter("optimize")
        self.systems.append(system)
        return Reply(Solved(self.solution, {"solver": "greedy"}, dict(self.current)))

    def actuate(self, solved: Reply[Solved], collected: Reply[m.Collection],
                dry_run: bool, notices=()) -> list[m.ActuationResult]:
        self.notices.append(list(notices))
        solution = solved.value.solution
        with self._guard:
            self.active += 1
            self.overlaps += self.active > 1
        try:
            self._enter("actuate")
            time.sleep(self.actuate_s)
            return [m.ActuationResult(name, m.KubeRef("llm", "llama-13b"), m.ActuationOutcome.CHANGED,
                                      f"replicas 1 -> {a.num_replicas}", 1, a.num_replicas, a.accelerator, dry_run)
                    for name, a in solution.allocations.items()]
        finally:
            with self._guard:
                self.active -= 1
