"""Pools in the optimizer (services/optimizer/poolsizing.py): a pool server is sized by the priority ILP on the
cheapest accelerator serving every class within its mean end-to-end bound, it competes for the cards with the
other servers as one of them (its priority its most important class's), and the answer carries each class's
rate and predicted latency per replica."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.scenario import Scenario, static_system
from services.core import model as m
from services.optimizer.poolsizing import latency_bounds_s, pool_candidates, pool_priority, size_pool
from services.optimizer.solver import choose_solver, solve, time_limit

SYSTEM = static_system(Scenario())  # the small sample set, 8 G2 cards


def _pool(rates=(60.0, 90.0), **kw) -> m.Server:
    load = m.Load(sum(rates), 128, 64)
    named = zip(("Premium", "Bronze"), rates, strict=True)
    classes = tuple(m.PoolClass(n, i, m.Load(r, 128, 64)) for i, (n, r) in enumerate(named))
    return m.Server("pool", "Premium", "granite_13b", current=m.Allocation("G2", 1, load=load),
                    pool_classes=classes, **kw)


def test_a_pool_gets_replicas_each_classs_rate_per_replica_and_predicted_latency_within_its_bound():
    system = replace(SYSTEM, servers=(_pool(),))
    bounds = latency_bounds_s(system, _pool())
    assert bounds == pytest.approx([(1000 + 40 * 63) / 1000, (2000 + 80 * 63) / 1000])  # TTFT + ITL (K - 1)
    alloc = solve(system).solution.allocations["pool"]
    assert alloc.accelerator == "G2" and alloc.num_replicas >= 2 and not alloc.saturated
    assert [r * alloc.num_replicas for r in alloc.class_rpm] == pytest.approx([60, 90])
    assert all(0 < lat <= b for lat, b in zip(alloc.class_latency_s, bounds, strict=True))
    assert alloc.cost_per_hour == pytest.approx(alloc.num_replicas * 23.0)
    more = solve(replace(system, servers=(_pool((120.0, 180.0)),))).solution.allocations["pool"]
    assert more.num_replicas > alloc.num_replicas


def test_the_pools_cards_are_charged_against_the_capacity_the_other_servers_get():
    ordinary = m.Server("other", "Free", "granite_13b", current=m.Allocation("G2", 1, load=m.Load(700, 128, 64)))
    alone = solve(replace(SYSTEM, servers=(ordinary,))).solution.allocations["other"]
    both = solve(replace(SYSTEM, servers=(_pool(), ordinary))).solution
    pool = both.allocations["pool"]
    assert pool.num_replicas + alone.num_replicas > 8  # together they would need more than the 8 G2 cards
    other = both.allocations.get("other")
    assert other is None or other.num_replicas <= 8 - pool.num_replicas
    assert other is None or other.saturated


def test_capacity_short_of_the_pool_leaves_its_least_important_class_unserved():
    system = replace(SYSTEM, servers=(_pool((120.0, 180.0)),), capacity=m.Capacity({"G2": 2}))
    alloc = solve(system).solution.allocations["pool"]
    assert alloc.num_replicas == 2 and alloc.saturated and alloc.unserved_rate_rpm > 0
    assert alloc.class_rpm[0] * 2 == pytest.approx(120)  # the important class is served in full


def test_min_replicas_and_a_class_without_targets():
    system = replace(SYSTEM, servers=(_pool(min_replicas=5),))
    alloc = solve(system).solution.allocations["pool"]
    assert alloc.num_replicas == 5 and [r * 5 for r in alloc.class_rpm] == pytest.approx([60, 90])
    unknown = replace(_pool(), pool_classes=(m.PoolClass("Gold", 0, m.Load(10, 128, 64)),))
    result = solve(replace(SYSTEM, servers=(unknown,))).solution
    assert "pool" not in result.allocations and "Gold" in result.unallocated["pool"]


def _classes_pool(names, rates=(60.0, 90.0)) -> m.Server:
    """A fresh pool (no replica yet) of ``names`` (priority order) at ``rates`` RPM."""
    load = m.Load(sum(rates), 128, 64)
    classes = tuple(m.PoolClass(n, i, m.Load(r, 128, 64)) for i, (n, r) in enumerate(zip(names, rates, strict=True)))
    return m.Server("pool", names[0], "granite_13b", current=m.Allocation("", 0, load=load), pool_classes=classes)


def _ordinary(name, service_class, rate) -> m.Server:
    return m.Server(name, service_class, "granite_13b", current=m.Allocation("", 0, load=m.Load(rate, 128, 64)))


def _short(servers, cards, solver, policy=m.SaturationPolicy.NONE) -> m.Solution:
    settings = replace(SYSTEM.optimizer, saturation_policy=policy, solver=solver)
    return solve(replace(SYSTEM, servers=servers, capacity=m.Capacity({"G2": cards}), optimizer=settings)).solution


SOLVERS = (m.SolverKind.EXACT, m.SolverKind.GREEDY)


def test_a_pools_priority_is_its_most_important_classs():
    assert pool_priority(SYSTEM, _classes_pool(("Bronze", "Free"))) == 2
    assert pool_priority(SYSTEM, _classes_pool(("Free", "Premium"))) == 1


@pytest.mark.parametrize("solver", SOLVERS)
def test_short_capacity_a_pool_with_a_more_important_class_wins_the_cards_over_a_less_important_server(solver):
    # 6 G2 cards: the pool needs 2, the Free server 5 (each fits alone, not both); the pool holds Premium
    pool, other = _classes_pool(("Premium", "Bronze")), _ordinary("alpha", "Free", 450.0)
    assert _short((other,), 6, solver).allocations["alpha"].num_replicas == 5
    got = _short((pool, other), 6, solver)
    assert got.allocations["pool"].num_replicas == 2 and not got.allocations["pool"].saturated
    assert "alpha" not in got.allocations and "insufficient capacity" in got.unallocated["alpha"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_short_capacity_a_more_important_server_wins_the_cards_over_a_pool_of_less_important_classes(solver):
    # the Premium server needs 5 of the 6 cards; the pool (Bronze, Free) needs 2: it gets the card left over,
    # its Bronze class served in full there and Free only in part
    pool, other = _classes_pool(("Bronze", "Free")), _ordinary("alpha", "Premium", 300.0)
    got = _short((pool, other), 6, solver)
    assert got.allocations["alpha"].num_replicas == 5 and not got.allocations["alpha"].saturated
    left = got.allocations["pool"]
    assert left.num_replicas == 1 and left.saturated and left.class_rpm[0] == pytest.approx(60)
    assert left.unserved_rate_rpm == pytest.approx(90 - left.class_rpm[1])
    assert len(left.class_latency_s) == 2


def test_a_pool_given_fewer_replicas_by_the_saturation_policy_is_re_solved_on_them():
    pool, other = _classes_pool(("Bronze", "Free")), _ordinary("alpha", "Premium", 300.0)
    got = _short((pool, other), 6, m.SolverKind.EXACT, m.SaturationPolicy.PRIORITY_EXHAUSTIVE)
    left = got.allocations["pool"]
    assert got.allocations["alpha"].num_replicas == 5
    assert left.num_replicas == 1 and left.saturated and left.class_rpm[0] == pytest.approx(60)


@pytest.mark.parametrize("solver", SOLVERS)
def test_with_ample_capacity_a_pool_gets_its_own_best_answer_and_the_others_theirs(solver):
    pool, other = _classes_pool(("Premium", "Bronze")), _ordinary("alpha", "Free", 450.0)
    system = replace(SYSTEM, servers=(pool, other), capacity=m.Capacity({"G2": 100}),
                     optimizer=replace(SYSTEM.optimizer, solver=solver))
    limit = time_limit(system.optimizer)
    alone, _ = size_pool(system, pool, system.capacity.counts, limit)  # the pool sized alone on the capacity
    got = solve(system).solution
    assert got.allocations["pool"] == alone
    assert got.allocations["alpha"] == solve(replace(system, servers=(other,))).solution.allocations["alpha"]
    assert choose_solver(system.optimizer) == solver
    unlimited = replace(system, optimizer=replace(system.optimizer, unlimited=True))
    assert solve(unlimited).solution.allocations["pool"] == size_pool(system, pool, None, limit)[0]


def test_a_pools_candidates_are_one_per_accelerator_serving_every_class():
    system = replace(SYSTEM, servers=(_classes_pool(("Premium", "Bronze")),))
    opts = pool_candidates(system, time_limit(system.optimizer))
    cands = opts.options["pool"]
    assert len({c.accelerator for c in cands}) == len(cands) >= 1
    assert [c.value for c in cands] == sorted(c.value for c in cands)
    for c in cands:
        alloc = opts.answers["pool", c.accelerator]
        assert (c.num_replicas, c.cost_per_hour) == (alloc.num_replicas, pytest.approx(alloc.cost_per_hour))
        assert not alloc.saturated
    assert opts.priorities["pool"] == 1
    on_g2 = pool_candidates(system, time_limit(system.optimizer), {"G2": 8})  # only G2 cards: others not tried
    assert [c.accelerator for c in on_g2.options["pool"]] == ["G2"]
    assert "no replica fits the capacity" in on_g2.dropped["pool"]["A100"]
