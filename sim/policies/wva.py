"""WVA's saturation analyzer V1 (llm-d workload-variant-autoscaler, docs/saturation-analyzer.md and
docs/capacity-scaling-config.md; docs/simulator.md s2), for one variant.

Every period (WVA's reconcile interval, 60 s by default) per Ready replica reporting metrics: KV-cache usage and
waiting requests as max_over_time over 1 m (the collector's safety-first peaks). A replica is saturated at
KV >= ``kv_threshold`` (0.80) or waiting >= ``queue_threshold`` (5). Over the non-saturated replicas, spare KV =
kv_threshold - KV and spare queue = queue_threshold - waiting, averaged. Scale up by one when the average spare
KV < ``kv_spare_trigger`` (0.10) or the average spare queue < ``queue_spare_trigger`` (3), or when every replica
is saturated; never while a replica is pending (not yet Ready: the cascade guard). Scale down by one only if the
load of the non-saturated replicas redistributed over one fewer keeps both spares at or above the triggers
(and no replica is saturated). Otherwise keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.policies import ClusterView
from sim.scenario import Scenario


@dataclass(frozen=True, slots=True)
class WvaSettings:
    """The saturation thresholds and triggers (WVA's capacity-scaling-config defaults)."""

    kv_threshold: float = 0.80
    queue_threshold: float = 5.0
    kv_spare_trigger: float = 0.10
    queue_spare_trigger: float = 3.0


def decide_v1(current: int, replicas: Sequence[tuple[float, float]], pending: int, s: WvaSettings) -> int:
    """Desired replicas from (KV usage 0..1, waiting requests) of each Ready replica, given ``pending`` not
    yet Ready. Pure."""
    if not replicas:
        return current
    free = [(kv, q) for kv, q in replicas if kv < s.kv_threshold and q < s.queue_threshold]
    saturated = len(replicas) - len(free)
    if not free:
        return current if pending else current + 1
    spare_kv = sum(s.kv_threshold - kv for kv, _ in free) / len(free)
    spare_queue = sum(s.queue_threshold - q for _, q in free) / len(free)
    if spare_kv < s.kv_spare_trigger or spare_queue < s.queue_spare_trigger:
        return current if pending else current + 1
    if saturated or len(free) < 2 or pending:
        return current
    remaining = len(free) - 1
    kv_after = s.kv_threshold - sum(kv for kv, _ in free) / remaining
    queue_after = s.queue_threshold - sum(q for _, q in free) / remaining
    if kv_after >= s.kv_spare_trigger and queue_after >= s.queue_spare_trigger:
        return current - 1
    return current


class WvaV1Policy:
    """WVA saturation scaling V1 on the simulated Prometheus."""

    name = "wva-v1"

    def __init__(self, scenario: Scenario) -> None:
        settings = scenario.policy_settings("wva-v1")
        self.scenario = scenario
        self.settings = WvaSettings(**{k: float(v) for k, v in settings.items() if k != "period_s"})
        self.period_s = float(settings.get("period_s", scenario.control_period_s))
        self.window_s = 60.0

    def initial_replicas(self) -> int:
        """The scenario's initial replicas."""
        return self.scenario.cluster.initial_replicas

    def decide(self, view: ClusterView) -> int:
        """One reconcile."""
        observed = []
        for pod in view.pods:
            if not pod.ready or pod.terminating:
                continue
            kv = view.prometheus.max_over_time(pod.name, "kv_cache_usage", view.now_s, self.window_s)
            waiting = view.prometheus.max_over_time(pod.name, "requests_waiting", view.now_s, self.window_s)
            if kv is not None and waiting is not None:
                observed.append((kv, waiting))
        return decide_v1(view.spec_replicas, observed, view.pending_replicas, self.settings)
