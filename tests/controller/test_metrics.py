"""The controller's per-server gauges: what was measured from every cycle, what was decided from applied ones."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from services.core import model as m
from tests.controller.fakes import CAPACITY, MANAGED, SERVER, STATIC, FakeClients

LABELS = {"namespace": "llm", "deployment": "llama-13b", "server": "Premium-llama_13b", "model": "llama_13b",
          "service_class": "Premium"}


def samples(metrics: ControllerMetrics) -> dict[str, dict[tuple, float]]:
    """Series name -> {sorted label items: value}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(series: dict[str, dict[tuple, float]], name: str, **extra: str) -> float:
    return series[name][tuple(sorted({**LABELS, **extra}.items()))]


def test_an_applied_cycle_exports_load_latency_slos_replicas_and_decision_per_server() -> None:
    metrics = ControllerMetrics()
    ControlLoop(FakeClients(), lambda: (STATIC, CAPACITY), metrics).invoke()
    series = samples(metrics)
    assert one(series, "inferno_server_arrival_rate_requests_per_second") == 1.0  # 60 req/min
    assert one(series, "inferno_server_input_tokens") == 128 and one(series, "inferno_server_output_tokens") == 1024
    assert one(series, "inferno_server_observed_itl_seconds") == 0.030
    assert one(series, "inferno_server_observed_ttft_seconds") == 0.400
    assert one(series, "inferno_server_slo_itl_seconds") == 0.080
    assert one(series, "inferno_server_slo_ttft_seconds") == 1.0
    assert one(series, "inferno_server_predicted_itl_seconds") == 0.0364
    assert one(series, "inferno_server_predicted_ttft_seconds") == 0.4252
    assert one(series, "inferno_server_current_replicas") == 1 and one(series, "inferno_server_ready_replicas") == 1
    assert one(series, "inferno_server_max_batch_size") == 38
    assert one(series, "inferno_server_cost_per_hour") == 69.0
    assert one(series, "inferno_server_saturated") == 0
    assert one(series, "inferno_server_accelerator_info", accelerator="G2") == 1


def test_a_skipped_cycle_updates_what_was_measured_and_keeps_the_last_decision() -> None:
    metrics = ControllerMetrics()
    clients = FakeClients()
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), metrics)
    loop.invoke()
    clients.fail["optimize"] = RuntimeError("optimizer down")
    busier = replace(SERVER, current=replace(SERVER.current, load=m.Load(120, 128, 1024)))
    clients.collection = m.Collection((replace(MANAGED, server=busier),))
    assert loop.invoke().outcome == "skipped"
    series = samples(metrics)
    assert one(series, "inferno_server_arrival_rate_requests_per_second") == 2.0
    assert one(series, "inferno_server_max_batch_size") == 38


def test_a_server_that_left_the_cluster_leaves_the_measured_gauges() -> None:
    metrics = ControllerMetrics()
    clients = FakeClients()
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), metrics)
    loop.invoke()
    clients.collection = m.Collection()
    loop.invoke()
    series = samples(metrics)
    assert "inferno_server_arrival_rate_requests_per_second" not in series


def test_the_tuner_state_is_exported_per_model_and_accelerator() -> None:
    from services.controller.cycle import CycleRecord
    metrics = ControllerMetrics()
    state = {"model": "llama", "accelerator": "H100", "mode": "on", "samples": 20, "status": "adopted",
             "estimate": {"alpha": 6.6, "beta": 0.02, "gamma": 5e-5}, "estimate_error": 0.03, "current_error": 0.2}
    metrics.observe(CycleRecord(1, "t", "applied", tuner=(state,)))
    series = samples(metrics)
    key = (("accelerator", "H100"), ("mode", "on"), ("model", "llama"))
    assert series["inferno_tuner_alpha_seconds"][key] == 0.0066
    assert (series["inferno_tuner_estimate_error_ratio"][key], series["inferno_tuner_current_error_ratio"][key]) == (
        0.03, 0.2)
    assert (series["inferno_tuner_samples"][key], series["inferno_tuner_adopted"][key]) == (20, 1)
    metrics.observe(CycleRecord(2, "t", "skipped"))
    assert "inferno_tuner_alpha_seconds" not in samples(metrics)


def test_the_forecast_and_its_interval_are_in_the_cycle_row_and_exported() -> None:
    observed = replace(SERVER.observed, measured_rate_rpm=60.0, forecast_rpm=90.0, forecast_lower_rpm=72.0,
                       forecast_upper_rpm=108.0, forecast_horizon_s=180.0, forecast_method="local-linear-trend",
                       forecast_rising=True)
    managed = replace(MANAGED, server=replace(SERVER, observed=observed))
    metrics = ControllerMetrics()
    record = ControlLoop(FakeClients(collection=m.Collection((managed,))), lambda: (STATIC, CAPACITY),
                         metrics).invoke()
    row = record.rows[0]
    assert (row.forecast_rpm, row.forecast_lower_rpm, row.forecast_upper_rpm, row.forecast_rising) == (
        90.0, 72.0, 108.0, True)
    series = samples(metrics)
    assert one(series, "inferno_server_measured_arrival_rate_requests_per_second") == 1.0
    assert one(series, "inferno_server_forecast_arrival_rate_requests_per_second") == 1.5
    assert one(series, "inferno_server_forecast_lower_requests_per_second") == 1.2
    assert one(series, "inferno_server_forecast_upper_requests_per_second") == 1.8
    assert one(series, "inferno_server_forecast_horizon_seconds") == 180.0


def test_percentiles_observed_targeted_and_predicted_are_exported() -> None:
    observed = replace(SERVER.observed, ttft_ms_p90=850.0)
    managed = replace(MANAGED, server=replace(SERVER, observed=observed))
    target = m.ModelTarget("llama_13b", 80.0, 1000.0, slo_ttft_p90_ms=900.0)
    system = replace(STATIC, service_classes=(m.ServiceClass("Premium", 1, (target,)),))
    solution = m.Solution({"Premium-llama_13b": m.Allocation("G2", 3, 38, 69.0, 36.4, 425.2, m.Load(60, 128, 1024),
                                                             ttft_ms_p90=610.0)})
    metrics = ControllerMetrics()
    ControlLoop(FakeClients(collection=m.Collection((managed,)), solution=solution), lambda: (system, CAPACITY),
                metrics).invoke()
    series = samples(metrics)
    assert one(series, "inferno_server_observed_ttft_p90_seconds") == 0.85
    assert one(series, "inferno_server_slo_ttft_p90_seconds") == 0.9
    assert one(series, "inferno_server_predicted_ttft_p90_seconds") == 0.61
    assert not series.get("inferno_server_observed_itl_p99_seconds")  # unknown: no series
