"""Independent check of the sample solutions: every allocation, re-evaluated from the queueing model itself
(not from the figures the solver reports), meets its class's SLOs, and the cards used fit the capacity
(docs/model.md s2-s6)."""

from __future__ import annotations

import pytest

from services.core.model import Server, SystemData
from services.optimizer.queueing import analyze_point
from services.optimizer.servicetime import QUEUE_TO_BATCH_RATIO, replica_model_for
from services.optimizer.solver import solve

MS_PER_MINUTE = 60_000.0
SAMPLE_FIXTURES = [pytest.param("small_system", id="small"), pytest.param("large_system", id="large")]


def total_rate_per_ms(system: SystemData, srv: Server) -> float:
    """Lambda per docs/model.md s6: slo-tps / K when a throughput target is set, else arrivalRate / 60 s."""
    target = system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
    if target.slo_tps > 0:
        return target.slo_tps / (1000.0 * srv.load.avg_out_tokens)
    return srv.load.arrival_rate_rpm / MS_PER_MINUTE


@pytest.mark.parametrize("fixture", SAMPLE_FIXTURES)
def test_every_sample_allocation_recomputed_from_the_model_meets_its_class_slos(
        fixture: str, request: pytest.FixtureRequest) -> None:
    system: SystemData = request.getfixturevalue(fixture)
    solution = solve(system).solution
    assert not solution.unallocated
    assert set(solution.allocations) == {s.name for s in system.servers}
    for srv in system.servers:
        alloc = solution.allocations[srv.name]
        assert not alloc.saturated and alloc.num_replicas >= 1, srv.name
        perf = system.perf(srv.model, alloc.accelerator)
        target = system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
        assert perf is not None and target is not None, srv.name
        load = srv.load
        queue = srv.max_queue_size if srv.max_queue_size > 0 else QUEUE_TO_BATCH_RATIO * alloc.max_batch
        rm = replica_model_for(system.optimizer, load, perf.perf, alloc.max_batch, queue)
        point = analyze_point(rm, total_rate_per_ms(system, srv) / alloc.num_replicas)
        if target.slo_itl_ms > 0:
            assert point.itl_ms <= target.slo_itl_ms * (1 + 1e-6), (srv.name, point.itl_ms, target.slo_itl_ms)
        if target.slo_ttft_ms > 0:
            assert point.ttft_ms <= target.slo_ttft_ms * (1 + 1e-6), (srv.name, point.ttft_ms, target.slo_ttft_ms)


@pytest.mark.parametrize("fixture", SAMPLE_FIXTURES)
def test_cards_used_by_the_sample_solutions_counted_from_replicas_fit_the_capacity_per_type(
        fixture: str, request: pytest.FixtureRequest) -> None:
    system: SystemData = request.getfixturevalue(fixture)
    assert not system.optimizer.unlimited
    solution = solve(system).solution
    models = {s.name: s.model for s in system.servers}
    used: dict[str, int] = {}
    for name, alloc in solution.allocations.items():
        acc = system.accelerator(alloc.accelerator)
        perf = system.perf(models[name], alloc.accelerator)
        assert acc is not None and perf is not None, name
        acc_count = perf.acc_count if perf.acc_count > 0 else 1
        used[acc.type] = used.get(acc.type, 0) + alloc.num_replicas * acc_count * acc.multiplicity
    assert used
    for kind, cards in used.items():
        assert cards <= system.capacity.count(kind), (kind, cards, system.capacity.count(kind))
