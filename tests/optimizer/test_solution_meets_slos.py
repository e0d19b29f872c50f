"""Independent check of the sample solutions: every allocation, re-evaluated from the queueing model itself
(not from the figures the solver reports), meets its class's SLOs, and the cards used fit the capacity
(docs/model.md s2-s6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.core.model import Server, ServiceModel, SolverKind, SystemData
from services.optimizer.solver import solve
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import default_queue, replica_model_for

MS_PER_MINUTE = 60_000.0
SAMPLE_FIXTURES = [pytest.param("small_system", id="small"), pytest.param("large_system", id="large")]
MODES = [pytest.param(SolverKind.GREEDY, ServiceModel.AUTO, id="greedy"),
         pytest.param(SolverKind.EXACT, ServiceModel.V03, id="exact-v0.3")]
"""Modes in which the sample sets fit their capacity: Inferno-compatible (greedy, v0.3) and the exact solver on
the same model. With the default model (v1, docs/model.md s3.1) the samples need more cards than they have."""


def mode(system: SystemData, solver: SolverKind, model: ServiceModel) -> SystemData:
    return replace(system, optimizer=replace(system.optimizer, solver=solver, service_model=model))


def total_rate_per_ms(system: SystemData, srv: Server) -> float:
    """Lambda per docs/model.md s6: slo-tps / K when a throughput target is set, else arrivalRate / 60 s."""
    target = system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
    if target.slo_tps > 0:
        return target.slo_tps / (1000.0 * srv.load.avg_out_tokens)
    return srv.load.arrival_rate_rpm / MS_PER_MINUTE


@pytest.mark.parametrize(("solver", "model"), MODES)
@pytest.mark.parametrize("fixture", SAMPLE_FIXTURES)
def test_every_sample_allocation_recomputed_from_the_model_meets_its_class_slos(
        fixture: str, solver: SolverKind, model: ServiceModel, request: pytest.FixtureRequest) -> None:
    system = mode(request.getfixturevalue(fixture), solver, model)
    solution = solve(system).solution
    assert not solution.unallocated
    assert set(solution.allocations) == {s.name for s in system.servers}
    check_slos(system, solution, allow_saturated=False)


@pytest.mark.parametrize("fixture", SAMPLE_FIXTURES)
def test_in_the_default_mode_every_allocation_not_flagged_saturated_meets_its_slos(
        fixture: str, request: pytest.FixtureRequest) -> None:
    system: SystemData = request.getfixturevalue(fixture)
    checked = check_slos(system, solve(system).solution, allow_saturated=True)
    # capacity binds under v1 for at most one lower-priority server in each sample set (docs/model.md s9)
    assert checked >= len(system.servers) - 1, (checked, len(system.servers))


def check_slos(system: SystemData, solution, allow_saturated: bool) -> int:
    """Assert the SLOs of every allocation checked; returns how many were checked."""
    checked = 0
    for srv in system.servers:
        alloc = solution.allocations[srv.name] if srv.name in solution.allocations else None
        if alloc is None or (allow_saturated and alloc.saturated):
            continue
        assert not alloc.saturated and alloc.num_replicas >= 1, srv.name
        perf = system.perf(srv.model, alloc.accelerator)
        target = system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
        assert perf is not None and target is not None, srv.name
        load = srv.load
        queue = srv.max_queue_size if srv.max_queue_size > 0 else default_queue(system.optimizer, alloc.max_batch)
        rm = replica_model_for(system.optimizer, load, perf.perf, alloc.max_batch, queue)
        point = analyze_point(rm, total_rate_per_ms(system, srv) / alloc.num_replicas)
        if target.slo_itl_ms > 0:
            assert point.itl_ms <= target.slo_itl_ms * (1 + 1e-6), (srv.name, point.itl_ms, target.slo_itl_ms)
        if target.slo_ttft_ms > 0:
            assert point.ttft_ms <= target.slo_ttft_ms * (1 + 1e-6), (srv.name, point.ttft_ms, target.slo_ttft_ms)
        checked += 1
    return checked


@pytest.mark.parametrize(("solver", "model"), [*MODES, pytest.param(SolverKind.EXACT, ServiceModel.AUTO, id="default")])
@pytest.mark.parametrize("fixture", SAMPLE_FIXTURES)
def test_cards_used_by_the_sample_solutions_counted_from_replicas_fit_the_capacity_per_type(
        fixture: str, solver: SolverKind, model: ServiceModel, request: pytest.FixtureRequest) -> None:
    system = mode(request.getfixturevalue(fixture), solver, model)
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
