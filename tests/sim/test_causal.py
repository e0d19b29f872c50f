"""The causal reference: which rises no policy sees coming, the share of requests they put at risk, and the
``causal`` policy that is blind to them (sim/causal.py, sim/policies/baseline.py)."""

from __future__ import annotations

import pytest

from emulator.loadshape import Phase, Schedule
from sim.causal import at_risk_share, rises
from sim.policies import ClusterView
from sim.policies.baseline import CausalPolicy, OraclePolicy
from sim.prometheus import Prometheus
from sim.scenario import load


def size(rate_rps: float) -> int:
    """Two requests per second per replica."""
    return max(int(-(-rate_rps // 2.0)), 1)


def test_a_jump_that_needs_more_replicas_is_a_rise_a_ramp_and_a_fall_are_not() -> None:
    schedule = Schedule((Phase(100, 1.0, 1.0), Phase(100, 5.0, 5.0), Phase(100, 5.0, 9.0), Phase(100, 1.0, 1.0),
                         Phase(100, 1.5, 1.5)))
    assert rises(schedule, size) == [(100.0, 1.0, 5.0)]  # 1 -> 1.5 req/s fits the same replica


def test_the_share_at_risk_is_the_requests_within_one_start_up_delay_after_a_rise() -> None:
    schedule = Schedule((Phase(100, 1.0, 1.0), Phase(100, 5.0, 5.0)))
    # 100 + 500 requests in all; 5 req/s x 20 s after the rise at risk
    assert at_risk_share(schedule, size, 20.0) == pytest.approx(100 / 600)
    assert at_risk_share(Schedule((Phase(100, 1.0, 1.0), Phase(100, 1.0, 9.0))), size, 20.0) == 0.0
    with pytest.raises(ValueError, match="startup_s"):
        at_risk_share(schedule, size, -1.0)


def view(now_s: float) -> ClusterView:
    return ClusterView(now_s, 1, (), Prometheus())


def test_causal_is_the_oracle_until_a_rise_it_cannot_see_then_asks_for_every_replica() -> None:
    scenario = load("step-3x")  # 1.5 req/s for 600 s, then 4.5 req/s; start-up 120 s, period 60 s
    causal, oracle = CausalPolicy(scenario), OraclePolicy(scenario)
    before = causal.decide(view(500.0))
    assert oracle.decide(view(500.0)) > before == oracle.need(500.0, 599.0), "the oracle sees the step coming"
    assert causal.decide(view(600.0)) == scenario.cluster.max_replicas
    assert causal.decide(view(600.0 + 120.0 + 55.0)) == scenario.cluster.max_replicas
    assert causal.decide(view(600.0 + 120.0 + 65.0)) == oracle.decide(view(785.0))
