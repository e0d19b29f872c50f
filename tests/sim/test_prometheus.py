"""The simulated Prometheus answers as the real one: rate() extrapolates like Prometheus 2.x, counter resets are
corrected, gauges average or peak over the window, instant queries see the latest sample."""

from __future__ import annotations

import pytest

from sim.prometheus import Prometheus, extrapolated_rate


def test_rate_of_a_steady_counter_is_its_slope() -> None:
    times = [5.0, 20.0, 35.0, 50.0]
    values = [100 + 2.0 * t for t in times]
    assert extrapolated_rate(times, values, 0.0, 60.0) == pytest.approx(2.0)


def test_rate_extrapolates_to_the_counter_zero_point_not_beyond() -> None:
    # a counter born at t=10 (0 there) sampled at 20, 35, 50: Prometheus extends the start only to its zero point
    times, values = [20.0, 35.0, 50.0], [10.0, 25.0, 40.0]
    assert extrapolated_rate(times, values, 0.0, 60.0) == pytest.approx((30.0 * (30 + 10 + 10) / 30) / 60.0)


def test_rate_corrects_a_counter_reset() -> None:
    times, values = [0.0, 15.0, 30.0, 45.0, 60.0], [0.0, 15.0, 30.0, 5.0, 20.0]
    assert extrapolated_rate(times, values, 0.0, 60.0) == pytest.approx(50.0 / 60.0)


def test_rate_needs_two_samples() -> None:
    assert extrapolated_rate([10.0], [3.0], 0.0, 60.0) is None


def test_window_queries_over_the_scraped_samples() -> None:
    prometheus = Prometheus()
    for t in (5.0, 20.0, 35.0, 50.0, 65.0):
        prometheus.scrape(t, "pod-a", {"requests_per_s": t, "requests_waiting": t / 5.0})
    rates = prometheus.rates(["pod-a", "pod-gone"], 60.0, 60.0)
    assert set(rates) == {"pod-a"}
    assert rates["pod-a"].requests_per_s == pytest.approx(1.0)
    assert rates["pod-a"].requests_waiting == pytest.approx((1 + 4 + 7 + 10) / 4)
    assert rates["pod-a"].itl_sum_per_s is None
    assert prometheus.max_over_time("pod-a", "requests_waiting", 60.0, 60.0) == 10.0
    assert prometheus.latest("pod-a", "requests_waiting", 60.0) == 10.0
    assert prometheus.latest("pod-a", "requests_waiting", 1000.0) is None  # older than the 5 min lookback


def test_the_ttft_and_itl_histograms_give_the_collectors_percentiles_as_on_a_real_replica() -> None:
    from services.collector.aggregate import measure
    from sim.replica import SimMetrics

    prometheus, pods = Prometheus(), {"pod-a": SimMetrics(), "pod-b": SimMetrics()}
    for name, metrics in pods.items():
        prometheus.scrape(0.0, name, metrics.sample())
    for t in (15.0, 30.0, 45.0, 60.0):  # per pod and scrape: 9 first tokens at 30 ms, 1 at 300 ms
        for metrics in pods.values():
            for _ in range(9):
                metrics.on_first_token(0.03)
            metrics.on_first_token(0.3)
            metrics.on_tokens(0.02, 200)  # 20 ms gaps, and one slow gap of 120 ms per scrape
            metrics.on_token(0.12)
        for name, metrics in pods.items():
            prometheus.scrape(t, name, metrics.sample())
    rates = prometheus.rates(list(pods), 60.0, 60.0)
    assert [le for le, _ in rates["pod-a"].ttft_buckets][:3] == [0.001, 0.005, 0.01]
    assert rates["pod-a"].ttft_buckets[-1][0] == float("inf") and rates["pod-a"].itl_buckets[0][0] == 0.01
    measured = measure(list(rates.values()))
    # 72 of 80 TTFTs in (0.02, 0.04], 8 in (0.25, 0.5]: histogram_quantile interpolates inside the bucket
    assert measured.ttft_ms_p90 == pytest.approx(40.0)
    assert measured.ttft_ms_p99 == pytest.approx(250.0 + 250.0 * (0.99 * 80 - 72) / 8)
    assert measured.ttft_ms_p50 == pytest.approx(20.0 + 20.0 * 40 / 72)
    # 1,600 gaps of 20 ms in (0.01, 0.025] and 8 of 120 ms in (0.1, 0.15]
    assert measured.itl_ms_p90 == pytest.approx(10.0 + 15.0 * (0.9 * 1608) / 1600)
    assert measured.itl_ms_p99 == pytest.approx(10.0 + 15.0 * (0.99 * 1608) / 1600)
    assert measured.ttft_ms == pytest.approx(1000 * (72 * 0.03 + 8 * 0.3) / 80)
