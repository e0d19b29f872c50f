"""The baseline policies on hand-made metric sequences: the Kubernetes HPA's tolerance, missing-pod rule,
stabilization window and rate limits; WVA saturation V1's up/down rules and its pending-pod hold."""

from __future__ import annotations

import pytest

from sim.policies import ClusterView, PodView
from sim.policies.hpa import HpaPolicy, recommend
from sim.policies.wva import WvaSettings, WvaV1Policy, decide_v1
from sim.prometheus import Prometheus
from sim.scenario import load

TARGET = 10.0


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param([10.5, 10.5], 2, id="within-10%-tolerance-no-change"),
    pytest.param([9.2, 9.2], 2, id="within-tolerance-below-no-change"),
    pytest.param([15.0, 15.0], 3, id="ratio-1.5-ceil"),
    pytest.param([30.0, 1.0], 4, id="mean-of-pods-ceil-1.55x2"),
    pytest.param([2.0, 2.0], 1, id="scale-down-ratio-0.2"),
])
def test_hpa_recommendation(values: list[float], expected: int) -> None:
    assert recommend(2, {f"p{i}": v for i, v in enumerate(values)}, TARGET) == expected


def test_hpa_counts_a_pod_without_metrics_as_zero_when_scaling_up() -> None:
    # 2 pods at 20 -> ratio 2; with the third pod at 0 the ratio is 40/30 = 1.33 -> ceil(1.33 x 3) = 4
    assert recommend(3, {"a": 20.0, "b": 20.0, "new": None}, TARGET) == 4


def test_hpa_counts_a_pod_without_metrics_as_the_target_when_scaling_down() -> None:
    # 2 pods at 2 -> ratio 0.2; the missing pod at the target: (2 + 2 + 10) / 30 = 0.47 -> ceil(1.4) = 2
    assert recommend(3, {"a": 2.0, "b": 2.0, "new": None}, TARGET) == 2


def test_hpa_holds_when_the_missing_pod_flips_the_direction() -> None:
    # ratio 1.15 > 1 from the known pods, but with the missing pod as 0 the ratio is 0.77: no change
    assert recommend(3, {"a": 11.5, "b": 11.5, "new": None}, TARGET) == 3


def _hpa() -> HpaPolicy:
    return HpaPolicy(load("seed001-stairstep"))


def test_hpa_scale_down_waits_for_the_300_s_stabilization_window() -> None:
    hpa = _hpa()
    assert hpa.behave(0.0, 4, 6) == 6
    assert hpa.behave(15.0, 6, 2) == 6       # the 6 of t=0 is within 300 s
    assert hpa.behave(290.0, 6, 2) == 6
    assert hpa.behave(301.0, 6, 2) == 2      # t=0 left the window; only 2s remain


def test_hpa_scales_up_at_once_but_at_most_double_or_plus_four() -> None:
    hpa = _hpa()
    assert hpa.behave(0.0, 1, 20) == 5       # max(2 x 1, 1 + 4)
    assert hpa.behave(15.0, 10, 40) == 20    # max(2 x 10, 10 + 4)


def test_hpa_reads_running_plus_waiting_from_the_latest_scrape() -> None:
    scenario = load("seed001-stairstep")
    hpa = HpaPolicy(scenario)
    assert hpa.target == pytest.approx(0.8 * 64)
    prometheus = Prometheus()
    for pod, running, waiting in (("a", 64, 30), ("b", 64, 30)):
        prometheus.scrape(10.0, pod, {"requests_running": 10, "requests_waiting": 0})
        prometheus.scrape(25.0, pod, {"requests_running": running, "requests_waiting": waiting})
    view = ClusterView(30.0, 2, (PodView("a", True), PodView("b", True)), prometheus)
    assert hpa.decide(view) == 4  # 94 / 51.2 = 1.84 -> ceil(3.67)


S = WvaSettings()


@pytest.mark.parametrize(("replicas", "pending", "expected"), [
    pytest.param([(0.3, 0), (0.3, 0)], 0, 1, id="down-when-one-fewer-keeps-spare"),
    pytest.param([(0.5, 0), (0.5, 0)], 0, 2, id="no-down-when-one-fewer-would-exceed-kv-trigger"),
    pytest.param([(0.3, 2), (0.3, 2)], 0, 2, id="no-down-when-one-fewer-queue-spare-below-3"),
    pytest.param([(0.75, 0), (0.2, 0)], 0, 2, id="steady-average-spare-above-triggers"),
    pytest.param([(0.75, 0), (0.72, 0)], 0, 3, id="up-average-spare-kv-below-0.1"),
    pytest.param([(0.2, 3), (0.2, 3)], 0, 3, id="up-average-spare-queue-below-3"),
    pytest.param([(0.9, 0), (0.2, 6)], 0, 3, id="up-when-every-replica-saturated"),
    pytest.param([(0.75, 0), (0.72, 0)], 1, 2, id="no-up-while-a-replica-is-pending"),
    pytest.param([(0.85, 0), (0.2, 0), (0.2, 0)], 0, 3, id="no-down-while-a-replica-is-saturated"),
])
def test_wva_v1_rules(replicas: list[tuple[float, float]], pending: int, expected: int) -> None:
    assert decide_v1(len(replicas), replicas, pending, S) == expected


def test_wva_reads_peaks_over_one_minute_of_ready_pods_only() -> None:
    policy = WvaV1Policy(load("seed001-stairstep"))
    prometheus = Prometheus()
    for t, kv, waiting in ((5.0, 0.1, 0), (20.0, 0.78, 6), (35.0, 0.1, 0), (50.0, 0.1, 0)):
        prometheus.scrape(t, "a", {"kv_cache_usage": kv, "requests_waiting": waiting})
    view = ClusterView(60.0, 2, (PodView("a", True), PodView("b", False)), prometheus)
    assert view.pending_replicas == 1
    assert policy.decide(view) == 2  # pod a's peak (waiting 6) saturates it, but pod b is pending: hold
    view = ClusterView(60.0, 1, (PodView("a", True),), prometheus)
    assert policy.decide(view) == 2  # nothing pending: up by one
