"""INFERNO_FORECAST=on in the collector: servers sized for the load their new replicas will meet."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kubernetes import client

from services.collector import forecast, promql
from services.collector.aggregate import PodFacts, PodRates
from services.collector.collect import Collector, ForecastSetup
from services.collector.sources import pod_facts
from tests.collector.fakes import FixedKube, FixedMetrics, deployment, write_data

RAMP = [60.0 + 24.0 * i for i in range(10)]  # req/min, one a minute, the last one a minute ago


class HistoryMetrics(FixedMetrics):
    """A metrics source with a rate history, as the Prometheus source reads it with range queries."""

    def __init__(self, rates, history) -> None:
        super().__init__(rates)
        self.history = history
        self.asked: list[tuple[float, float, float]] = []

    def arrival_history(self, deployments, lookback_s, step_s, end_s):
        self.asked.append((lookback_s, step_s, end_s))
        return self.history, []


def _rates(rpm: float, waiting: float = 0.0, growth_per_s: float = 0.0) -> dict:
    pod = PodRates(requests_per_s=rpm / 60.0, requests_waiting=waiting, requests_running=2.0,
                   in_system_growth_per_s=growth_per_s)
    return {("llm", "vllm"): {"pod-a": pod}}


def _collector(tmp_path, metrics, facts=None, now=10_000.0) -> Collector:
    kube = FixedKube([facts or deployment()])
    return Collector(kube, metrics, write_data(tmp_path), forecast=ForecastSetup(600.0, 60.0, 120.0, 60.0),
                     now_s=lambda: now)


def test_a_rising_load_is_sized_for_the_forecasts_upper_bound(tmp_path) -> None:
    metrics = HistoryMetrics(_rates(RAMP[-1] + 24.0), {("llm", "vllm"): RAMP})
    server = _collector(tmp_path, metrics).collect().managed[0].server
    observed = server.observed
    assert metrics.asked == [(600.0, 60.0, 10_000.0)]
    assert observed.measured_rate_rpm == RAMP[-1] + 24.0
    assert observed.forecast_method == forecast.METHOD_TREND and observed.forecast_horizon_s == 180.0
    assert observed.forecast_rising
    assert server.load.arrival_rate_rpm == observed.forecast_upper_rpm > 60.0 + 24.0 * 13 * 0.95


def test_a_saturated_server_counts_its_growing_queue_as_arrivals(tmp_path) -> None:
    metrics = HistoryMetrics(_rates(180.0, waiting=0.0, growth_per_s=1.5), {("llm", "vllm"): [180.0] * 5})
    server = _collector(tmp_path, metrics).collect().managed[0].server
    assert server.observed.measured_rate_rpm == 180.0 + 90.0


def test_waiting_requests_are_added_unless_replicas_are_already_starting(tmp_path) -> None:
    flat = {("llm", "vllm"): [90.0] * 8}
    ready = _collector(tmp_path, HistoryMetrics(_rates(90.0, waiting=30.0), flat)).collect().managed[0]
    assert ready.server.load.arrival_rate_rpm == 90.0 + 30.0 * 60.0 / 180.0  # served within the horizon
    starting = replace(deployment(), spec_replicas=2)  # one replica asked for, not Ready yet
    pending = _collector(tmp_path, HistoryMetrics(_rates(90.0, waiting=30.0), flat), starting).collect().managed[0]
    assert pending.server.load.arrival_rate_rpm == 90.0  # the backlog is not asked for twice


def test_the_start_up_delay_is_measured_from_the_pods(tmp_path) -> None:
    pods = tuple(PodFacts(f"vllm-abc-{i}", "127.0.0.1", True, 1, startup_s=s) for i, s in enumerate((95.0, 139.0)))
    facts = replace(deployment(pods=()), pods=pods)
    metrics = HistoryMetrics({("llm", "vllm"): {p.name: _rates(45.0)[("llm", "vllm")]["pod-a"] for p in pods}},
                             {("llm", "vllm"): RAMP})
    observed = _collector(tmp_path, metrics, facts).collect().managed[0].server.observed
    assert observed.forecast_horizon_s == (95.0 + 139.0) / 2 + 60.0


def test_without_a_history_source_the_collector_remembers_its_own_rates(tmp_path) -> None:
    clock = [0.0]
    metrics = FixedMetrics(_rates(60.0))
    collector = Collector(FixedKube([deployment()]), metrics, write_data(tmp_path),
                          forecast=ForecastSetup(600.0, 60.0, 120.0, 60.0), now_s=lambda: clock[0])
    methods = []
    for minute, rpm in enumerate(RAMP):
        clock[0] = 60.0 * minute
        metrics.rates = _rates(rpm)
        methods.append(collector.collect().managed[0].server.observed.forecast_method)
    assert methods[0] == forecast.METHOD_SHORT and methods[-1] == forecast.METHOD_TREND


def test_pod_start_up_is_creation_to_ready() -> None:
    created = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="vllm-abc-x", creation_timestamp=created),
                       status=client.V1PodStatus(conditions=[client.V1PodCondition(
                           type="Ready", status="True", last_transition_time=created + timedelta(seconds=117))]),
                       spec=client.V1PodSpec(containers=[]))
    assert pod_facts(pod).startup_s == 117.0
    pod.status.conditions[0].status = "False"
    assert pod_facts(pod).startup_s is None


def test_range_results_group_pods_gone_since_by_their_names() -> None:
    matrix = [{"metric": {"namespace": "llm", "pod": "vllm-7d9f8-abcde"}, "values": [[0, "1.0"], [60, "1.5"]]},
              {"metric": {"namespace": "llm", "pod": "vllm-other-7d9f8-abcde"}, "values": [[0, "9"]]}]
    series = promql.parse_matrix(matrix)
    assert series[("llm", "vllm-7d9f8-abcde")] == {0.0: 1.0, 60.0: 1.5}
    assert promql.pod_of_deployment("vllm-7d9f8-abcde", "vllm")
    assert not promql.pod_of_deployment("vllm-other-7d9f8-abcde", "vllm")
    assert forecast.sum_series([{0.0: 1.0, 60.0: 2.0}, {60.0: 3.0, 120.0: 4.0}], before_s=100.0) == [1.0, 5.0]


def test_a_fast_path_collection_reads_the_short_window_and_measures_only(tmp_path) -> None:
    class WindowMetrics(HistoryMetrics):
        def read(self, deployments, window=""):
            self.windows.append(window)
            return self.rates, []

    metrics = WindowMetrics(_rates(90.0), {("llm", "vllm"): RAMP})
    metrics.windows = []
    observed = _collector(tmp_path, metrics).collect(window="30s", forecast=False).managed[0].server.observed
    assert metrics.windows == ["30s"] and metrics.asked == [] and observed.forecast_method == ""
