"""Pools in the optimizer (services/optimizer/poolsizing.py): a pool server is sized by the priority ILP on the
cheapest accelerator serving every class within its mean end-to-end bound, its cards are charged against the
capacity the other servers get, and the answer carries each class's rate and predicted latency per replica."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.scenario import Scenario, static_system
from services.core import model as m
from services.optimizer.poolsizing import latency_bounds_s
from services.optimizer.solver import solve

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
