"""Properties of the solver over generated systems (hypothesis; modest example counts, no deadline). A case
where the property has nothing to check (no feasible allocation) is rejected with ``assume``, so every case
that counts asserts."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.synthetic import synthetic_system
from services.core.model import OptimizerSettings, SaturationPolicy, SystemData
from services.optimizer.candidates import build_candidates
from services.optimizer.solver import solve, units_used
from tests.optimizer.conftest import server, tiny_system

FEW = settings(max_examples=15, deadline=None)
rates = st.floats(min_value=1.0, max_value=3000.0, allow_nan=False)
tokens = st.integers(min_value=16, max_value=2048)
policies = st.sampled_from(list(SaturationPolicy))


def replicas_by_accelerator(system: SystemData) -> dict[str, int]:
    return {c.accelerator: c.num_replicas for c in build_candidates(system).options.get("a", ())}


@FEW
@given(rates, rates, tokens, tokens)
def test_more_load_never_gives_fewer_replicas_on_any_accelerator(r1: float, r2: float, in_t: int, out_t: int) -> None:
    low, high = sorted((r1, r2))
    fewer = replicas_by_accelerator(tiny_system([server("a", rpm=low, in_tokens=in_t, out_tokens=out_t)]))
    more = replicas_by_accelerator(tiny_system([server("a", rpm=high, in_tokens=in_t, out_tokens=out_t)]))
    assume(more)
    assert set(more) <= set(fewer)
    assert all(more[acc] >= fewer[acc] for acc in more)


@FEW
@given(rates, st.floats(min_value=30, max_value=300), st.floats(min_value=200, max_value=5000),
       st.floats(min_value=0.3, max_value=1.0))
def test_a_tighter_slo_never_gives_a_cheaper_allocation(rpm: float, itl: float, ttft: float, factor: float) -> None:
    unlimited = OptimizerSettings(unlimited=True)
    loose = solve(tiny_system([server("a", rpm=rpm)], settings=unlimited, itl_ms=itl, ttft_ms=ttft)).solution
    tight = solve(tiny_system([server("a", rpm=rpm)], settings=unlimited, itl_ms=itl * factor,
                              ttft_ms=ttft * factor)).solution
    assume("a" in tight.allocations)
    assert tight.allocations["a"].cost_per_hour >= loose.allocations["a"].cost_per_hour - 1e-9


@FEW
@given(st.integers(0, 10_000), st.integers(0, 200), policies, st.booleans())
def test_capacity_is_never_exceeded_in_limited_mode(seed: int, cards: int, policy: SaturationPolicy,
                                                    delayed: bool) -> None:
    system = synthetic_system(12, seed=seed, capacity_per_type=cards, policy=policy)
    system = replace(system, optimizer=replace(system.optimizer, delayed_best_effort=delayed))
    solution = solve(system).solution
    assert set(solution.allocations) | set(solution.unallocated) == {s.name for s in system.servers}
    for kind, used in units_used(system, solution).items():
        assert used <= system.capacity.count(kind)


@FEW
@given(st.integers(0, 10_000), st.integers(0, 300))
def test_every_non_saturated_allocation_meets_its_targets(seed: int, cards: int) -> None:
    system = synthetic_system(12, seed=seed, capacity_per_type=cards)
    solution = solve(system).solution
    checked = [(srv, solution.allocations[srv.name]) for srv in system.servers
               if srv.name in solution.allocations and not solution.allocations[srv.name].saturated
               and solution.allocations[srv.name].num_replicas > 0]
    assume(checked)
    for srv, alloc in checked:
        target = system.service_class(srv.service_class).target_for(srv.model)  # type: ignore[union-attr]
        if target.slo_itl_ms > 0:
            assert alloc.itl_ms <= target.slo_itl_ms * (1 + 1e-6)
        if target.slo_ttft_ms > 0:
            assert alloc.ttft_ms <= target.slo_ttft_ms * (1 + 1e-6)


@FEW
@given(st.integers(0, 10_000), st.integers(0, 300), policies, st.randoms(use_true_random=False))
def test_results_are_identical_across_runs_and_input_orderings(seed: int, cards: int, policy: SaturationPolicy,
                                                              rng: random.Random) -> None:
    system = synthetic_system(10, seed=seed, capacity_per_type=cards, policy=policy)

    def shuffled(items: tuple) -> tuple:
        return tuple(rng.sample(items, len(items)))

    reordered = replace(system, servers=shuffled(system.servers), accelerators=shuffled(system.accelerators),
                        models=shuffled(system.models), service_classes=shuffled(system.service_classes))
    first, again = solve(system), solve(system)
    assert first.solution == again.solution
    assert replace(first.stats, exact_solve_time_ms=None) == replace(again.stats, exact_solve_time_ms=None)
    assert solve(reordered).solution == first.solution
