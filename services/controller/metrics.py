"""The controller's Prometheus metrics: cycle durations and outcomes, total cost, per-server desired replicas."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.controller.cycle import OUTCOMES, CycleRecord


class ControllerMetrics:
    """Metrics in their own registry (so tests can hold several); ``render`` gives the text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycle_duration = Histogram(
            "inferno_cycle_duration_seconds", "Duration of a control cycle.", registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.cycles = Counter("inferno_cycles", "Control cycles by outcome (applied, skipped, unconfirmed).",
                              ["outcome"], registry=self.registry)
        self.total_cost = Gauge("inferno_total_cost_per_hour", "Cost of the last applied allocation, per hour.",
                                registry=self.registry)
        self.desired = Gauge("inferno_server_desired_replicas", "Replicas the last applied cycle decided.",
                             ["server", "namespace", "deployment", "accelerator"], registry=self.registry)
        for outcome in OUTCOMES:
            self.cycles.labels(outcome)

    def observe(self, record: CycleRecord) -> None:
        """Account for one cycle; desired replicas are replaced only by an applied cycle."""
        self.cycle_duration.observe(record.timings_ms.get("total", 0.0) / 1000.0)
        self.cycles.labels(record.outcome).inc()
        if record.outcome != "applied":
            return
        self.total_cost.set(record.total_cost_per_hour)
        self.desired.clear()
        for row in record.rows:
            if "replicas" in row:
                self.desired.labels(row["server"], row["namespace"], row["deployment"],
                                    row["accelerator"]).set(row["replicas"])

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
