"""Candidates, the greedy and unlimited solvers and the saturation policies (docs/model.md s6-s8)."""

from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest

from services.core.datafiles import read_solution
from services.core.errors import InvalidInputError
from services.core.model import (
    Accelerator,
    Allocation,
    ModelPerf,
    OptimizerSettings,
    PerfParms,
    SaturationPolicy,
    Server,
    ServiceModel,
    Solution,
    SolverKind,
    SystemData,
)
from services.optimizer.candidates import build_candidates, transition_value
from services.optimizer.solver import SolverDefaults, solve
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import ReplicaModel
from tests.optimizer.conftest import GRANITE_G2, SAMPLES, server, tiny_system, v03


def units_used(system: SystemData, solution: Solution) -> dict[str, int]:
    used: dict[str, int] = {}
    for name, alloc in solution.allocations.items():
        acc = system.accelerator(alloc.accelerator)
        perf = system.perf(next(s.model for s in system.servers if s.name == name), alloc.accelerator)
        assert acc is not None and perf is not None
        used[acc.type] = used.get(acc.type, 0) + alloc.num_replicas * max(perf.acc_count, 1) * acc.multiplicity
    return used


# --- golden checks (docs/model.md s7) ---

def test_small_sample_reproduces_every_published_row_with_the_greedy_solver(small_system: SystemData) -> None:
    published = read_solution(os.path.join(SAMPLES, "small", "solution-data.json"))
    got = solve(small_system, SolverDefaults(SolverKind.GREEDY)).solution
    assert set(got.allocations) == set(published.allocations)
    for name, want in published.allocations.items():
        have = got.allocations[name]
        assert (have.accelerator, have.num_replicas, have.max_batch, have.cost_per_hour) == \
            (want.accelerator, want.num_replicas, want.max_batch, want.cost_per_hour), name
        assert have.itl_ms == pytest.approx(want.itl_ms, rel=1e-4), name
        assert have.ttft_ms == pytest.approx(want.ttft_ms, rel=1e-3), name


@pytest.mark.parametrize("mode", [pytest.param(SolverDefaults(SolverKind.GREEDY), id="greedy"),
                                  pytest.param(SolverDefaults(SolverKind.EXACT), id="exact-v0.3")])
def test_large_sample_allocates_every_server_within_its_slos_and_the_capacity(large_system: SystemData,
                                                                               mode: SolverDefaults) -> None:
    solution = solve(v03(large_system), mode).solution
    assert not solution.unallocated
    assert len(solution.allocations) == len(large_system.servers)
    for srv in large_system.servers:
        alloc = solution.allocations[srv.name]
        target = large_system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
        assert not alloc.saturated
        if target.slo_itl_ms:
            assert alloc.itl_ms <= target.slo_itl_ms * (1 + 1e-6), srv.name
        if target.slo_ttft_ms:
            assert alloc.ttft_ms <= target.slo_ttft_ms * (1 + 1e-6), srv.name
    for kind, used in units_used(large_system, solution).items():
        assert used <= large_system.capacity.count(kind), kind


def test_empty_system_is_an_empty_answer() -> None:
    result = solve(SystemData())
    assert not result.solution.allocations and not result.solution.unallocated


# --- candidates ---

@pytest.mark.parametrize(("current", "candidate", "expected"), [
    pytest.param(("G2", 3, 69.0), ("G2", 3, 69.0), 0.0, id="unchanged-is-free"),
    pytest.param(("G2", 3, 69.0), ("G2", 5, 115.0), 46.0, id="more-replicas-cost-the-difference"),
    pytest.param(("G2", 5, 115.0), ("G2", 3, 69.0), -46.0, id="fewer-replicas-save-the-difference"),
    pytest.param(("L4", 28, 168.0), ("G2", 3, 69.0), 0.1 * (168 + 69) + (69 - 168), id="accelerator-change"),
    pytest.param(("", 0, 0.0), ("G2", 3, 69.0), 1.1 * 69, id="from-nothing-is-1.1-cost"),
])
def test_transition_value(current: tuple[str, int, float], candidate: tuple[str, int, float],
                          expected: float) -> None:
    assert transition_value(*current, *candidate) == pytest.approx(expected)


@pytest.mark.parametrize(("mode", "batch"), [pytest.param(SolverDefaults(SolverKind.GREEDY), 38, id="greedy-rule"),
                                           pytest.param(SolverDefaults(SolverKind.EXACT), 33, id="exact-search")])
def test_cheapest_candidate_wins_without_capacity_pressure(mode: SolverDefaults, batch: int) -> None:
    alloc = solve(tiny_system([server("a")]), mode).solution.allocations["a"]
    assert (alloc.accelerator, alloc.num_replicas, alloc.max_batch, alloc.cost_per_hour) == ("G2", 3, batch, 69.0)
    assert alloc.max_queue == 10 * batch


def test_min_num_replicas_raises_the_replica_count() -> None:
    alloc = solve(tiny_system([server("a", min_replicas=5)])).solution.allocations["a"]
    assert (alloc.accelerator, alloc.num_replicas, alloc.cost_per_hour) == ("G2", 5, 115.0)


def test_keep_accelerator_restricts_to_the_current_one() -> None:
    current = Allocation("L4", 28, 16, 168.0)
    alloc = solve(tiny_system([server("a", keep_accelerator=True, current=current)])).solution.allocations["a"]
    assert alloc.accelerator == "L4"


def test_zero_load_without_minimum_is_an_empty_allocation() -> None:
    current = Allocation("L4", 28, 16, 168.0)
    alloc = solve(tiny_system([server("a", rpm=0, current=current)])).solution.allocations["a"]
    assert alloc.is_empty and (alloc.num_replicas, alloc.cost_per_hour) == (0, 0.0)


def test_zero_load_keeps_the_minimum_replicas_at_the_model_batch_size() -> None:
    alloc = solve(tiny_system([server("a", out_tokens=0, min_replicas=2)])).solution.allocations["a"]
    assert alloc.num_replicas == 2
    assert alloc.max_batch == {"G2": 76, "L4": 16, "2xL4": 32}[alloc.accelerator]


def test_slo_tps_sizes_for_the_token_rate_not_the_request_rate() -> None:
    by_rate = solve(tiny_system([server("a", rpm=1)], itl_ms=0, ttft_ms=0)).solution.allocations["a"]
    by_tps = solve(tiny_system([server("a", rpm=1)], itl_ms=0, ttft_ms=0, tps=20000)).solution.allocations["a"]
    assert by_rate.num_replicas == 1
    assert by_tps.num_replicas > 1


def test_equal_accelerators_tie_on_cost_then_name_whatever_the_input_order() -> None:
    base = tiny_system([server("a")])
    twin = (Accelerator("A-G2", "G2", 1, cost_per_hour=23.0),)
    twin_perf = (ModelPerf("m", "A-G2", 1, 76, 512, GRANITE_G2),)
    forward = replace(base, accelerators=base.accelerators + twin, models=base.models + twin_perf)
    backward = replace(base, accelerators=twin + base.accelerators[::-1], models=twin_perf + base.models[::-1])
    assert solve(forward).solution.allocations["a"].accelerator == "A-G2"
    assert solve(backward).solution == solve(forward).solution


def test_zero_perf_parms_are_not_a_candidate() -> None:
    base = tiny_system([server("a")])
    models = tuple(replace(p, perf=PerfParms(0, 0, 0)) if p.accelerator == "G2" else p for p in base.models)
    assert solve(replace(base, models=models)).solution.allocations["a"].accelerator == "2xL4"


@pytest.mark.parametrize(("srv", "reason"), [
    pytest.param(server("a", cls="Gold"), "unknown service class 'Gold'", id="unknown-class"),
    pytest.param(replace(server("a"), model="other"), "has no target for model 'other'", id="no-target"),
])
def test_server_without_candidates_is_reported_unallocated_and_others_still_allocated(srv, reason) -> None:
    solution = solve(tiny_system([srv, server("b")])).solution
    assert reason in solution.unallocated["a"]
    assert "b" in solution.allocations


def test_unreachable_slo_is_reported_unallocated() -> None:
    solution = solve(tiny_system([server("a")], itl_ms=1.0)).solution
    assert "no accelerator meets the SLOs" in solution.unallocated["a"]


@pytest.mark.parametrize(("mutate", "message"), [
    pytest.param(lambda s: replace(s, servers=s.servers * 2), "servers.name: duplicate 'a'", id="duplicate-server"),
    pytest.param(lambda s: replace(s, models=(replace(s.models[0], accelerator="X"),)), "unknown accelerator 'X'",
                 id="unknown-accelerator"),
    pytest.param(lambda s: replace(s, models=(replace(s.models[0], perf=PerfParms(-1, 0, 0)),)),
                 "models[m/G2].perf.alpha_ms must be within 0..3,600,000 ms, got -1", id="negative-alpha"),
    pytest.param(lambda s: replace(s, servers=(server("a", rpm=float("nan")),)),
                 "current.load.arrival_rate_rpm must be a finite number, got nan", id="nan-load"),
])
def test_inconsistent_input_raises_invalid_input_naming_the_field(mutate, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        solve(mutate(tiny_system([server("a")])))


# --- limited capacity: greedy and saturation ---

def test_greedy_moves_to_the_next_candidate_when_capacity_is_short() -> None:
    alloc = solve(tiny_system([server("a")], capacity={"G2": 2, "L4": 100})).solution.allocations["a"]
    assert (alloc.accelerator, alloc.num_replicas) == ("2xL4", 11)


def test_higher_priority_is_served_first_and_the_rest_reported_without_saturation_policy() -> None:
    system = tiny_system([server("lo", rpm=600, cls="Low"), server("hi")], capacity={"G2": 14})
    solution = solve(system).solution
    assert solution.allocations["hi"].num_replicas == 3
    assert "insufficient capacity" in solution.unallocated["lo"]


REGRET_A = server("a", rpm=240, in_tokens=512, out_tokens=256)
"""Cheapest on 7 L4 cards (7 x L4, 42/h), next 2 x G2 at 46/h: regret 1.1 x 4 = 4.4."""
REGRET_Z = server("z", rpm=30, in_tokens=2048, out_tokens=128)
"""Cheapest on 3 L4 cards (3 x L4, 18/h), next 1 x G2 at 23/h: regret 1.1 x 5 = 5.5."""


@pytest.mark.parametrize("servers", [pytest.param((REGRET_A, REGRET_Z), id="name-order"),
                                     pytest.param((REGRET_Z, REGRET_A), id="reversed")])
def test_same_priority_servers_competing_for_cheap_cards_are_served_by_regret_not_name_or_input_order(
        servers: tuple[Server, Server]) -> None:
    system = tiny_system(list(servers), capacity={"G2": 1000, "L4": 9})
    cs = build_candidates(system)
    a, z = cs.options["a"], cs.options["z"]
    # the premises: one priority, both want L4 first, 7 + 3 cards do not both fit, and "z" (later by name,
    # smaller value, so not first by value descending either) has the larger regret
    assert cs.priorities["a"] == cs.priorities["z"]
    assert [(c.accelerator, c.num_replicas, c.units) for c in a[:2]] == [("L4", 7, 7), ("G2", 2, 2)]
    assert [(c.accelerator, c.num_replicas, c.units) for c in z[:2]] == [("L4", 3, 3), ("G2", 1, 1)]
    assert a[0].units + z[0].units > system.capacity.count("L4") >= max(a[0].units, z[0].units)
    assert z[1].value - z[0].value > a[1].value - a[0].value
    assert z[0].value < a[0].value
    allocations = solve(system).solution.allocations
    assert {n: (x.accelerator, x.num_replicas) for n, x in allocations.items()} == {"z": ("L4", 3), "a": ("G2", 2)}


def test_unlimited_mode_ignores_capacity() -> None:
    system = tiny_system([server("a"), server("b", rpm=600)], capacity={},
                         settings=OptimizerSettings(unlimited=True))
    result = solve(system)
    assert result.solver == "unlimited"
    assert {n: a.accelerator for n, a in result.solution.allocations.items()} == {"a": "G2", "b": "G2"}


def policy(name: SaturationPolicy, delayed: bool = False) -> OptimizerSettings:
    return OptimizerSettings(saturation_policy=name, delayed_best_effort=delayed, service_model=ServiceModel.V03)


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param(policy(SaturationPolicy.NONE), {}, id="none"),
    pytest.param(policy(SaturationPolicy.PRIORITY_EXHAUSTIVE), {"b1": 10}, id="exhaustive-fills-in-order"),
    pytest.param(policy(SaturationPolicy.ROUND_ROBIN), {"b1": 5, "b2": 5}, id="round-robin-shares"),
    pytest.param(policy(SaturationPolicy.PRIORITY_ROUND_ROBIN), {"b1": 5, "b2": 5}, id="priority-rr-same-group"),
])
def test_saturation_policies_share_what_is_left(settings: OptimizerSettings, expected: dict[str, int]) -> None:
    system = tiny_system([server("b1", rpm=600), server("b2", rpm=600)], capacity={"G2": 10}, settings=settings)
    solution = solve(system).solution
    assert {n: a.num_replicas for n, a in solution.allocations.items()} == expected
    assert set(solution.unallocated) == {"b1", "b2"} - set(expected)


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param(policy(SaturationPolicy.ROUND_ROBIN), {"hi": 10}, id="per-group-high-first"),
    pytest.param(policy(SaturationPolicy.ROUND_ROBIN, delayed=True), {"hi": 5, "lo": 5}, id="delayed-rr-all"),
    pytest.param(policy(SaturationPolicy.PRIORITY_ROUND_ROBIN, delayed=True), {"hi": 10}, id="delayed-priority-rr"),
])
def test_delayed_best_effort_decides_whether_lower_priorities_share(settings: OptimizerSettings,
                                                                    expected: dict[str, int]) -> None:
    system = tiny_system([server("hi", rpm=600), server("lo", rpm=600, cls="Low")], capacity={"G2": 10},
                         settings=settings)
    assert {n: a.num_replicas for n, a in solve(system).solution.allocations.items()} == expected


def test_delayed_best_effort_lets_lower_priority_take_full_allocations_before_best_effort() -> None:
    system = tiny_system([server("hi", rpm=600), server("lo")], capacity={"G2": 10},
                         settings=policy(SaturationPolicy.ROUND_ROBIN, delayed=True))
    system = replace(system, servers=(system.servers[0], replace(system.servers[1], service_class="Low")))
    allocations = solve(system).solution.allocations
    assert (allocations["lo"].num_replicas, allocations["lo"].saturated) == (3, False)
    assert (allocations["hi"].num_replicas, allocations["hi"].saturated) == (7, True)


def test_best_effort_allocation_is_re_evaluated_at_its_real_load_and_flagged() -> None:
    system = tiny_system([server("b", rpm=600)], capacity={"G2": 10}, settings=policy(SaturationPolicy.ROUND_ROBIN))
    alloc = solve(system).solution.allocations["b"]
    point = analyze_point(ReplicaModel(GRANITE_G2, 128, 1024, 38, 380), 600 / 60_000 / 10)
    assert alloc.saturated
    assert alloc.cost_per_hour == pytest.approx(230.0)
    assert alloc.itl_ms == pytest.approx(point.itl_ms, rel=1e-9)
    assert alloc.ttft_ms == pytest.approx(point.ttft_ms, rel=1e-9)
    assert alloc.ttft_ms > 2000
    assert alloc.unserved_rate_rpm == pytest.approx(600 - 10 * point.throughput_per_ms * 60_000, rel=1e-9)
    assert alloc.unserved_rate_rpm > 0
