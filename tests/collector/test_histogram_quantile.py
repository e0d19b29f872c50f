"""Observed percentiles from vLLM's latency histograms (docs/contract.md s4): Prometheus's histogram_quantile
interpolation on known buckets, direct scrape and Prometheus alike, into the server's observed figures."""

from __future__ import annotations

import math

import pytest

from services.collector.aggregate import PodRates, measure
from services.collector.promql import histogram_quantile
from services.collector.scrape_source import rates_between, sample_totals

INF = math.inf
# 100 observations: 10 <= 0.025 s, 50 in (0.025, 0.05], 30 in (0.05, 0.1], 9 in (0.1, 0.5], 1 above 0.5 s
BUCKETS = ((0.025, 10.0), (0.05, 60.0), (0.1, 90.0), (0.5, 99.0), (INF, 100.0))


@pytest.mark.parametrize("q, expected", [
    (0.05, 0.0125),                       # first bucket: from 0 to 0.025, rank 5 of 10
    (0.5, 0.025 + 0.025 * 40 / 50),       # rank 50: 40 of the 50 in (0.025, 0.05]
    (0.9, 0.1),                           # rank 90: the top of (0.05, 0.1]
    (0.95, 0.1 + 0.4 * 5 / 9),            # rank 95: 5 of the 9 in (0.1, 0.5]
    (0.995, 0.5),                         # rank 99.5 falls in +Inf: the highest finite bound
])
def test_histogram_quantile_interpolates_as_prometheus_does(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)
    assert histogram_quantile(q, reversed(BUCKETS)) == pytest.approx(expected)  # order does not matter


@pytest.mark.parametrize("buckets", [(), ((0.1, 5.0),), ((0.1, 5.0), (0.2, 7.0)), ((0.1, 0.0), (INF, 0.0))])
def test_no_quantile_without_inf_bucket_or_observations(buckets) -> None:
    assert histogram_quantile(0.9, buckets) is None


def test_decreasing_counts_are_made_monotone() -> None:
    # as 4, 4, 8, 8: rank 6 is 2 of the 4 in (0.2, 0.4]
    assert histogram_quantile(0.75, ((0.1, 4.0), (0.2, 3.0), (0.4, 8.0), (INF, 8.0))) == pytest.approx(0.3)


def _text(ttft: list[tuple[str, int]], itl: list[tuple[str, int]], itl_name: str) -> str:
    lines = ["# TYPE vllm:time_to_first_token_seconds histogram"]
    lines += [f'vllm:time_to_first_token_seconds_bucket{{le="{le}",model_name="m"}} {n}' for le, n in ttft]
    lines += [f"# TYPE vllm:{itl_name} histogram"]
    lines += [f'vllm:{itl_name}_bucket{{le="{le}",model_name="m"}} {n}' for le, n in itl]
    return "\n".join([*lines, ""])


@pytest.mark.parametrize("itl_name", ["inter_token_latency_seconds", "time_per_output_token_seconds"])
def test_direct_scrape_turns_latency_buckets_into_percentiles(itl_name: str) -> None:
    zero = [("0.025", 0), ("0.05", 0), ("0.1", 0), ("0.5", 0), ("+Inf", 0)]
    first = sample_totals(_text(zero, zero, itl_name))
    later = [(le, int(n)) for (le, _), (_, n) in zip(zero, BUCKETS, strict=True)]
    second = sample_totals(_text(later, [(le, 2 * n) for le, n in later], itl_name))
    rates = rates_between((0.0, first), (10.0, second))
    assert rates.ttft_buckets == tuple((le, n / 10.0) for le, n in BUCKETS)
    observed = measure([rates])
    assert observed.ttft_ms_p50 == pytest.approx(45.0)
    assert observed.ttft_ms_p90 == pytest.approx(100.0)
    assert observed.itl_ms_p95 == pytest.approx(1000 * (0.1 + 0.4 * 5 / 9))
    assert observed.itl_ms_p99 == pytest.approx(500.0)


def test_pods_buckets_are_summed_before_the_quantile() -> None:
    fast = PodRates(ttft_buckets=((0.1, 9.0), (1.0, 10.0), (INF, 10.0)))
    slow = PodRates(ttft_buckets=((0.1, 0.0), (1.0, 10.0), (INF, 10.0)))
    both = measure([fast, slow])
    assert both.ttft_ms_p50 == pytest.approx(100 + 900 * 1 / 11)  # rank 10 of 20: 1 of the 11 in (0.1, 1]
    assert measure([fast]).ttft_ms_p50 == pytest.approx(100 * 5 / 9)
    assert measure([PodRates()]).ttft_ms_p90 is None and both.itl_ms_p90 is None
