"""The exact solver (docs/model.md s9): cheaper than the greedy on the same candidates, never worse at any priority
level, honours its time limit, and its model takes extra constraints."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.synthetic import synthetic_system
from services.core.model import Capacity, SaturationPolicy, ServiceModel, SolverKind, SystemData
from services.optimizer.candidates import build_candidates
from services.optimizer.exact import AllocationModel, Outcome, solve_exact, useful_candidates
from services.optimizer.solver import SolverDefaults, solve, units_used
from tests.optimizer.conftest import server, tiny_system, v03

EXACT, GREEDY = SolverDefaults(SolverKind.EXACT), SolverDefaults(SolverKind.GREEDY)
SCARCE = {"G2": 8, "A100": 512, "L4": 0, "AIU2": 0}


def scarce(system: SystemData, counts: dict[str, int], policy: SaturationPolicy = SaturationPolicy.NONE
           ) -> SystemData:
    return replace(v03(system), capacity=Capacity(counts),
                   optimizer=replace(system.optimizer, saturation_policy=policy, service_model=ServiceModel.V03))


def served_per_level(system: SystemData, names: set[str]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for srv in system.servers:
        if srv.name in names:
            level = system.service_class(srv.service_class).priority  # type: ignore[union-attr]
            counts[level] = counts.get(level, 0) + 1
    return counts


def fully_served(solution) -> set[str]:
    return {name for name, a in solution.allocations.items() if not a.saturated}


def test_small_set_exact_answer_is_cheaper_than_the_published_one_and_meets_every_slo(
        small_system: SystemData) -> None:
    small_system = v03(small_system)  # the same candidates as Inferno's
    result = solve(small_system, EXACT)
    assert (result.solver, result.stats.outcome) == ("exact", Outcome.OPTIMAL)
    assert result.solution.total_cost_per_hour == pytest.approx(35767.0)
    assert solve(small_system, GREEDY).solution.total_cost_per_hour == pytest.approx(39743.0)
    assert not result.solution.unallocated
    for srv in small_system.servers:
        alloc = result.solution.allocations[srv.name]
        target = small_system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
        assert not alloc.saturated
        assert alloc.itl_ms <= target.slo_itl_ms * (1 + 1e-6), srv.name
        assert alloc.ttft_ms <= target.slo_ttft_ms * (1 + 1e-6), srv.name
    for kind, used in units_used(small_system, result.solution).items():
        assert used <= small_system.capacity.count(kind)


def test_large_set_exact_answer_costs_26888_against_the_greedys_27007(large_system: SystemData) -> None:
    large_system = v03(large_system)
    assert solve(large_system, EXACT).solution.total_cost_per_hour == pytest.approx(26888.0)
    assert solve(large_system, GREEDY).solution.total_cost_per_hour == pytest.approx(27007.0)


def test_scarce_capacity_exact_serves_servers_the_greedy_leaves_out(small_system: SystemData) -> None:
    system = scarce(small_system, SCARCE)
    exact, greedy = solve(system, EXACT), solve(system, GREEDY)
    assert len(exact.solution.allocations) == 12 and len(greedy.solution.allocations) == 8
    assert exact.solution.total_cost_per_hour < greedy.solution.total_cost_per_hour
    assert exact.stats.outcome == Outcome.OPTIMAL
    assert sum(exact.stats.served_by_priority.values()) == 12


def test_a_tiny_time_limit_returns_the_greedy_answer_flagged_fallback(small_system: SystemData) -> None:
    system = scarce(small_system, SCARCE)
    limited = replace(system, optimizer=replace(system.optimizer, time_limit_s=1e-6))
    result = solve(limited, EXACT)
    assert (result.solver, result.stats.outcome) == ("exact", Outcome.FALLBACK)
    assert result.stats.objective == result.stats.greedy_objective  # the greedy's answer on the same candidates
    assert result.stats.served_by_priority == solve(system, GREEDY).stats.served_by_priority
    assert len(result.solution.allocations) == 8
    assert "time limit" in result.stats.fallback_reason
    assert result.stats.time_limit_s == 1e-6


def test_when_the_cheapest_candidates_fit_no_search_is_needed(small_system: SystemData) -> None:
    roomy = scarce(small_system, {"G2": 10_000, "A100": 10_000, "L4": 10_000, "AIU2": 10_000})
    result = solve(roomy, EXACT)
    assert (result.stats.outcome, result.stats.exact_solve_time_ms) == (Outcome.TRIVIAL, 0.0)
    unlimited = replace(roomy, optimizer=replace(roomy.optimizer, unlimited=True))
    assert result.solution == solve(unlimited).solution


def test_exact_takes_best_effort_per_priority_group_like_the_greedy() -> None:
    system = tiny_system([server("hi", rpm=600), server("lo", rpm=600, cls="Low")], capacity={"G2": 10},
                         settings=replace(tiny_system([]).optimizer, saturation_policy=SaturationPolicy.ROUND_ROBIN))
    allocations = solve(system, EXACT).solution.allocations
    assert {n: (a.num_replicas, a.saturated) for n, a in allocations.items()} == {"hi": (10, True)}


def test_the_model_takes_an_extra_constraint(small_system: SystemData) -> None:
    system = scarce(small_system, SCARCE)
    cs = build_candidates(system)
    capacity = dict(system.capacity.counts)

    def at_most_200_a100(am: AllocationModel) -> None:
        am.model.add(sum(c.units * x for pairs in am.choices.values() for c, x in pairs
                         if c.accelerator_type == "A100") <= 200)

    free = solve_exact(cs.options, cs.priorities, capacity, {}, 10.0)
    tight = solve_exact(cs.options, cs.priorities, capacity, {}, 10.0, extra=at_most_200_a100)
    assert sum(c.units for c in tight.chosen.values() if c.accelerator_type == "A100") <= 200
    assert sum(c.units for c in free.chosen.values() if c.accelerator_type == "A100") > 200
    assert sum(tight.served_by_priority.values()) <= sum(free.served_by_priority.values())


def test_dominated_and_oversized_candidates_are_dropped(small_system: SystemData) -> None:
    cs = build_candidates(small_system)
    for options in cs.options.values():
        kept = useful_candidates(options, {"G2": 8, "A100": 512})
        assert all(c.units <= {"G2": 8, "A100": 512}.get(c.accelerator_type, 0) for c in kept)
        for c in options:
            if c not in kept and c.units <= {"G2": 8, "A100": 512}.get(c.accelerator_type, 0):
                assert any(k.accelerator_type == c.accelerator_type and k.units <= c.units and k.value <= c.value
                           for k in kept)


FEW = settings(max_examples=20, deadline=None)


@FEW
@given(st.integers(0, 10_000), st.integers(0, 120), st.sampled_from(list(SaturationPolicy)))
def test_exact_never_serves_fewer_servers_at_any_level_nor_costs_more_at_the_same_service(
        seed: int, cards: int, policy: SaturationPolicy) -> None:
    system = v03(synthetic_system(14, seed=seed, capacity_per_type=cards, policy=policy))  # same candidates
    exact, greedy = solve(system, EXACT), solve(system, GREEDY)
    assert exact.stats.outcome in (Outcome.OPTIMAL, Outcome.TRIVIAL)
    ours, theirs = exact.stats.served_by_priority, greedy.stats.served_by_priority
    assert all(ours.get(level, 0) >= count for level, count in theirs.items())
    assert ours == served_per_level(system, fully_served(exact.solution))
    if ours == theirs:  # the same service: never dearer (no current allocations: value = 1.1 cost)
        full_cost = sum(a.cost_per_hour for n, a in exact.solution.allocations.items() if not a.saturated)
        greedy_cost = sum(a.cost_per_hour for n, a in greedy.solution.allocations.items() if not a.saturated)
        assert full_cost <= greedy_cost + 1e-6
    for kind, used in units_used(system, exact.solution).items():
        assert used <= system.capacity.count(kind)
