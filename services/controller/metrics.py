"""The controller's Prometheus metrics: cycles (duration, outcome), total cost, and per-server gauges.

Per-server gauges carry the labels ``namespace, deployment, server, model, service_class`` and follow
Prometheus' naming conventions (base units: seconds, requests per second). Two groups:
- what was measured, set from every cycle (absent after a cycle that collected nothing): arrival rate,
  average input and output tokens, observed ITL and TTFT, the SLOs of its service class, current and ready
  replicas, and the model-vs-reality check (observed / predicted ITL and TTFT at the current allocation, and
  whether the model disagrees; services/controller/modelcheck.py);
  replicas, and with INFERNO_FORECAST=on the measured rate, the forecast, its interval and horizon;
- what was decided, set only from a cycle that computed an allocation (applied, or advised in a dry run):
  desired replicas, batch size, predicted ITL and TTFT, cost, saturation, and the accelerator as an info
  metric (value 1, the accelerator a label).
A pool (docs/contract.md s10) also has per-class gauges, labelled ``class`` besides the server's labels: each
class's arrival rate and mean latency bound (measured group), its planned rate per replica and predicted mean
latency (decided group).
Each group is cleared before it is set again, so a server that left the cluster leaves the metrics too.
docs/contract.md s8 lists them; manifests/grafana/ is a dashboard built on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.controller.cycle import DECIDED as DECIDING_OUTCOMES
from services.controller.cycle import OUTCOMES, CycleRecord
from services.controller.cyclerow import CycleRow
from services.core.model import SLO_PERCENTILES

SERVER_LABELS = ("namespace", "deployment", "server", "model", "service_class")

MEASURED: tuple[tuple[str, str, str, float], ...] = (
    ("inferno_server_arrival_rate_requests_per_second", "Arrival rate the cycle used (measured, or the load "
     "labels when nothing was measured).", "arrival_rate_rpm", 1 / 60),
    ("inferno_server_input_tokens", "Average input (prompt) tokens per request.", "avg_in_tokens", 1.0),
    ("inferno_server_output_tokens", "Average output tokens per request.", "avg_out_tokens", 1.0),
    ("inferno_server_observed_itl_seconds", "Observed mean inter-token latency.", "observed_itl_ms", 1e-3),
    ("inferno_server_observed_ttft_seconds", "Observed mean time to first token.", "observed_ttft_ms", 1e-3),
    ("inferno_server_slo_itl_seconds", "ITL target of the server's service class.", "slo_itl_ms", 1e-3),
    ("inferno_server_slo_ttft_seconds", "TTFT target of the server's service class.", "slo_ttft_ms", 1e-3),
    ("inferno_server_current_replicas", "Spec replicas of the server's Deployment when collected.",
     "current_replicas", 1.0),
    ("inferno_server_ready_replicas", "Ready replicas of the server's Deployment when collected.",
     "ready_replicas", 1.0),
    ("inferno_server_model_itl_ratio", "Observed / predicted ITL at the server's current allocation and load.",
     "model_itl_ratio", 1.0),
    ("inferno_server_model_ttft_ratio", "Observed / predicted TTFT at the server's current allocation and load.",
     "model_ttft_ratio", 1.0),
    ("inferno_server_model_mismatch", "1 while the model disagrees with what the server shows (several cycles "
     "in a row beyond the tolerance; the cycle record has the warning).", "model_mismatch", 1.0),
    ("inferno_server_measured_arrival_rate_requests_per_second", "Arrival rate measured now (completions plus "
     "queue growth), with INFERNO_FORECAST=on.", "measured_rate_rpm", 1 / 60),
    ("inferno_server_forecast_arrival_rate_requests_per_second", "Forecast arrival rate at now + the forecast "
     "horizon (start-up delay + control period).", "forecast_rpm", 1 / 60),
    ("inferno_server_forecast_lower_requests_per_second", "Lower bound of the forecast's 80% prediction interval.",
     "forecast_lower_rpm", 1 / 60),
    ("inferno_server_forecast_upper_requests_per_second", "Upper bound of the forecast's 80% prediction interval.",
     "forecast_upper_rpm", 1 / 60),
    ("inferno_server_forecast_horizon_seconds", "How far ahead the forecast looks (start-up delay + period).",
     "forecast_horizon_s", 1.0),
)
"""(metric, help, CycleRow field, factor from the row's unit to the metric's)."""

_QUANTILES = tuple((metric, q) for metric in ("ttft", "itl") for q in SLO_PERCENTILES)
MEASURED += tuple(
    (f"inferno_server_observed_{metric}_p{q}_seconds", f"Observed P{q} {metric.upper()} (vLLM's histogram, "
     "histogram_quantile over the window).", f"observed_{metric}_ms_p{q}", 1e-3) for metric, q in _QUANTILES) + tuple(
    (f"inferno_server_slo_{metric}_p{q}_seconds", f"P{q} {metric.upper()} target of the server's service class.",
     f"slo_{metric}_ms_p{q}", 1e-3) for metric, q in _QUANTILES)

DECIDED: tuple[tuple[str, str, str, float], ...] = (
    ("inferno_server_max_batch_size", "Batch size of the allocation (vLLM --max-num-seqs).", "max_batch", 1.0),
    ("inferno_server_predicted_itl_seconds", "ITL the model predicts for the allocation.", "predicted_itl_ms", 1e-3),
    ("inferno_server_predicted_ttft_seconds", "TTFT the model predicts for the allocation.", "predicted_ttft_ms",
     1e-3),
    ("inferno_server_cost_per_hour", "Cost of the server's allocation per hour.", "cost_per_hour", 1.0),
    ("inferno_server_saturated", "1 when the allocation cannot serve the whole arrival rate.", "saturated", 1.0),
    *((f"inferno_server_predicted_{metric}_p{q}_seconds", f"P{q} {metric.upper()} the model predicts for the "
       "allocation (docs/model.md s3.2).", f"predicted_{metric}_ms_p{q}", 1e-3) for metric, q in _QUANTILES),
)


CLASS_LABELS = (*SERVER_LABELS, "class")
CLASS_MEASURED: tuple[tuple[str, str, str, float], ...] = (
    ("inferno_server_class_arrival_rate_requests_per_second", "A pool class's arrival rate the cycle used.",
     "arrival_rate_rpm", 1 / 60),
    ("inferno_server_class_latency_bound_seconds", "A pool class's mean end-to-end latency bound (its TTFT and "
     "ITL targets at the pool's output length).", "latency_bound_s", 1.0),
)
CLASS_DECIDED: tuple[tuple[str, str, str, float], ...] = (
    ("inferno_server_class_rate_per_replica_requests_per_second", "A pool class's rate per replica the last "
     "cycle planned (the router's weight).", "rate_per_replica_rpm", 1 / 60),
    ("inferno_server_class_predicted_latency_seconds", "A pool class's mean end-to-end latency the model "
     "predicts under priority scheduling.", "predicted_latency_s", 1.0),
)
"""(metric, help, key of a CycleRow.pool_classes item, factor from its unit to the metric's)."""


TUNER_LABELS = ("model", "accelerator", "mode")
TUNER: tuple[tuple[str, str, str, float], ...] = (
    ("inferno_tuner_alpha_seconds", "Online estimate of perfParms alpha (time per iteration).", "alpha", 1e-3),
    ("inferno_tuner_beta_seconds", "Online estimate of perfParms beta (time per computed token).", "beta", 1e-3),
    ("inferno_tuner_gamma_seconds", "Online estimate of perfParms gamma (time per KV-cache token read).", "gamma",
     1e-3),
    ("inferno_tuner_estimate_error_ratio", "Error of the estimate on the recent windows (mean |pred - meas| / "
     "mean meas, TTFT and ITL averaged).", "estimate_error", 1.0),
    ("inferno_tuner_current_error_ratio", "Error of the parameters in use on the same windows.", "current_error", 1.0),
    ("inferno_tuner_samples", "Observation windows the estimate is based on.", "samples", 1.0),
    ("inferno_tuner_adopted", "1 when the estimate is in use by the optimizer (INFERNO_TUNER=on and the gate "
     "passed).", "adopted", 1.0),
)
"""(metric, help, key of the tuner state, factor from the state's unit to the metric's): the online tuner per
(model, accelerator) (docs/model.md s12)."""


def _number(value: Any) -> float | None:
    if isinstance(value, int | float):  # bool too: True is 1
        return float(value)
    return None


class ControllerMetrics:
    """Metrics in their own registry (so tests can hold several); ``render`` gives the text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycle_duration = Histogram(
            "inferno_cycle_duration_seconds", "Duration of a control cycle.", registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.cycles = Counter("inferno_cycles", "Control cycles by outcome (applied, advised, skipped, unconfirmed).",
                              ["outcome"], registry=self.registry)
        self.total_cost = Gauge("inferno_total_cost_per_hour", "Cost per hour of the last decided allocation "
                                "(applied, or advised in a dry run).",
                                registry=self.registry)
        self.desired = Gauge("inferno_server_desired_replicas", "Replicas the last cycle decided "
                             "(applied, or advised in a dry run).",
                             ["server", "namespace", "deployment", "accelerator"], registry=self.registry)
        self.accelerator = Gauge("inferno_server_accelerator_info", "The accelerator of the server's allocation "
                                 "(value 1).", [*SERVER_LABELS, "accelerator"], registry=self.registry)
        self.measured = {key: (Gauge(name, text, SERVER_LABELS, registry=self.registry), factor)
                         for name, text, key, factor in MEASURED}
        self.decided = {key: (Gauge(name, text, SERVER_LABELS, registry=self.registry), factor)
                        for name, text, key, factor in DECIDED}
        self.class_measured = {key: (Gauge(name, text, CLASS_LABELS, registry=self.registry), factor)
                               for name, text, key, factor in CLASS_MEASURED}
        self.class_decided = {key: (Gauge(name, text, CLASS_LABELS, registry=self.registry), factor)
                              for name, text, key, factor in CLASS_DECIDED}
        for outcome in OUTCOMES:
            self.cycles.labels(outcome)
        self.tuner = {key: (Gauge(name, text, TUNER_LABELS, registry=self.registry), factor)
                      for name, text, key, factor in TUNER}

    def observe(self, record: CycleRecord) -> None:
        """Account for one cycle: measured gauges from every cycle (none when nothing was collected: a gap, not
        stale figures); decisions, cost and desired replicas only from a cycle that decided (applied, or
        advised in a dry run: the cycles counter tells them apart)."""
        self.cycle_duration.observe(record.timings_ms.get("total", 0.0) / 1000.0)
        self.cycles.labels(record.outcome).inc()
        _set_all(self.measured, record.rows)
        _set_classes(self.class_measured, record.rows)
        self._set_tuner(record.tuner)
        if record.outcome not in DECIDING_OUTCOMES:
            return
        self.total_cost.set(record.total_cost_per_hour)
        _set_all(self.decided, record.rows)
        _set_classes(self.class_decided, record.rows)
        self.desired.clear()
        self.accelerator.clear()
        for row in record.rows:
            if row.replicas is not None:
                self.desired.labels(row.server, row.namespace, row.deployment, row.accelerator).set(row.replicas)
                self.accelerator.labels(*_labels(row), row.accelerator).set(1)

    def _set_tuner(self, states: tuple[Mapping[str, Any], ...]) -> None:
        """The online tuner's state per (model, accelerator), replaced every cycle (docs/model.md s12)."""
        for gauge, _ in self.tuner.values():
            gauge.clear()
        for state in states:
            labels = (state["model"], state["accelerator"], state["mode"])
            estimate = state.get("estimate") or {}
            values = {"alpha": estimate.get("alpha"), "beta": estimate.get("beta"), "gamma": estimate.get("gamma"),
                      "estimate_error": state.get("estimate_error"), "current_error": state.get("current_error"),
                      "samples": state.get("samples"), "adopted": state.get("status") == "adopted"}
            for key, value in values.items():
                number = _number(value)
                gauge, factor = self.tuner[key]
                if number is not None:
                    gauge.labels(*labels).set(number * factor)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _labels(row: CycleRow) -> tuple[str, ...]:
    return (row.namespace, row.deployment, row.server, row.model, row.service_class)


def _set_all(gauges: Mapping[str, tuple[Gauge, float]], rows: tuple[CycleRow, ...]) -> None:
    for gauge, _ in gauges.values():
        gauge.clear()
    for row in rows:
        for key, (gauge, factor) in gauges.items():
            value = _number(getattr(row, key))
            if value is not None:
                gauge.labels(*_labels(row)).set(value * factor)


def _set_classes(gauges: Mapping[str, tuple[Gauge, float]], rows: tuple[CycleRow, ...]) -> None:
    """The per-class gauges of the pools among ``rows``, cleared first."""
    for gauge, _ in gauges.values():
        gauge.clear()
    for row in rows:
        for item in row.pool_classes or ():
            for key, (gauge, factor) in gauges.items():
                value = _number(item.get(key))
                if value is not None:
                    gauge.labels(*_labels(row), item["class"]).set(value * factor)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name ``registry`` can export (counters' ``_total``, histograms' ``_bucket/_sum/_count``)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created")}
    names = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names
