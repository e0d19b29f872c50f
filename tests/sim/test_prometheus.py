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
