"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) on a per-pod custom metric, with its defaults.

Reproduces the documented algorithm (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/,
"Algorithm details" and "Configurable scaling behavior"; pkg/controller/podautoscaler/replica_calculator.go):
- every ``sync_period_s`` (kube-controller-manager --horizontal-pod-autoscaler-sync-period, default 15 s) it
  reads the metric of each pod (an instant query of the latest scrape, as prometheus-adapter serves
  custom.metrics.k8s.io) and takes the ratio of their mean to the target averageValue;
- pods being deleted are ignored; pods without a value (not started yet) are set aside, and if the first
  answer scales up they count as 0, if it scales down as exactly the target, and the ratio is recomputed;
  no change if the recomputed ratio is within the tolerance (default 0.1) or reverses the direction;
- desired = ceil(ratio x pods counted); scale-up limited by the default policies (the larger of +100% and
  +4 pods per 15 s), scale-down by the default 300 s stabilization window (the highest recommendation of
  the last 300 s) and 100% per 15 s; clamped to minReplicas..maxReplicas (the simulator does that).
Metric (docs/simulator.md s2 says which): ``running_waiting`` = vllm:num_requests_running +
vllm:num_requests_waiting per pod, target ``target_per_pod`` (default 80% of max-num-seqs: the batch limit is
where a replica saturates, 20% headroom as WVA's KV threshold leaves); or ``kv_cache_usage`` (target 0.8).
"""

from __future__ import annotations

import math
from collections import deque

from sim.policies import ClusterView
from sim.scenario import Scenario

TOLERANCE = 0.1
SYNC_PERIOD_S = 15.0
SCALE_DOWN_STABILIZATION_S = 300.0
SCALE_UP_PERCENT = 100.0
SCALE_UP_PODS = 4


def usage_ratio(values: list[float], target: float) -> float:
    """Mean of ``values`` over ``target``."""
    return (sum(values) / len(values)) / target


def recommend(current: int, values: dict[str, float | None], target: float, tolerance: float = TOLERANCE) -> int:
    """The HPA's replica recommendation before behaviors: ``values`` maps each counted pod to its metric (None =
    missing). Returns ``current`` when nothing should change."""
    known = [v for v in values.values() if v is not None]
    missing = len(values) - len(known)
    if not known:
        return current
    ratio = usage_ratio(known, target)
    if missing == 0:
        if abs(ratio - 1.0) <= tolerance:
            return current
        return math.ceil(ratio * len(known))
    filler = 0.0 if ratio > 1.0 else target
    new_ratio = usage_ratio(known + [filler] * missing, target)
    if abs(new_ratio - 1.0) <= tolerance or (ratio > 1.0) != (new_ratio > 1.0):
        return current
    replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


class HpaPolicy:
    """An HPA with default behavior on one pods metric."""

    name = "hpa"

    def __init__(self, scenario: Scenario) -> None:
        settings = scenario.policy_settings("hpa")
        self.scenario = scenario
        self.metric = settings.get("metric", "running_waiting")
        default_target = 0.8 * scenario.server.max_num_seqs if self.metric == "running_waiting" else 0.8
        self.target = float(settings.get("target_per_pod", default_target))
        self.tolerance = float(settings.get("tolerance", TOLERANCE))
        self.period_s = float(settings.get("sync_period_s", SYNC_PERIOD_S))
        self.window_s = float(settings.get("scale_down_stabilization_s", SCALE_DOWN_STABILIZATION_S))
        self._recommendations: deque[tuple[float, int]] = deque()

    def initial_replicas(self) -> int:
        """The scenario's initial replicas."""
        return self.scenario.cluster.initial_replicas

    def _value(self, view: ClusterView, pod: str) -> float | None:
        prometheus = view.prometheus
        if self.metric == "kv_cache_usage":
            return prometheus.latest(pod, "kv_cache_usage", view.now_s)
        running = prometheus.latest(pod, "requests_running", view.now_s)
        waiting = prometheus.latest(pod, "requests_waiting", view.now_s)
        return None if running is None or waiting is None else running + waiting

    def decide(self, view: ClusterView) -> int:
        """One HPA sync: recommendation, stabilization, rate limits."""
        current = view.spec_replicas
        values = {p.name: self._value(view, p.name) for p in view.pods if not p.terminating}
        raw = recommend(current, values, self.target, self.tolerance)
        return self.behave(view.now_s, current, raw)

    def behave(self, now_s: float, current: int, recommendation: int) -> int:
        """Apply the default behavior: scale-down stabilization window, then the scale-up / down rate limits."""
        self._recommendations.append((now_s, recommendation))
        while self._recommendations and self._recommendations[0][0] < now_s - self.window_s:
            self._recommendations.popleft()
        up_recommendation = recommendation  # the default scale-up window is 0 s: the latest recommendation
        down_recommendation = max(r for _, r in self._recommendations)
        desired = current
        if desired < up_recommendation:
            desired = up_recommendation
        if desired > down_recommendation:
            desired = down_recommendation
        up_limit = max(math.ceil(current * (1 + SCALE_UP_PERCENT / 100.0)), current + SCALE_UP_PODS)
        return min(desired, up_limit)
