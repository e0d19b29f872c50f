"""Prometheus as the policies see it: per-pod samples scraped every interval, and the PromQL functions used.

Each scrape stores one sample per metric per pod (the vLLM counters and gauges the collector reads,
services/collector/promql.py, and the buckets of the generation-token, TTFT and inter-token-latency
histograms, whose rates give the collector's histogram_quantile percentiles).
``rate()`` is Prometheus' extrapolated rate (promql/functions.go
``extrapolatedRate`` in Prometheus 2.x: samples in the closed range [t - W, t], counter resets corrected, the
sampled interval extended to the range edges by up to half a scrape interval, and at the start no further than
the counter's zero point); ``avg_over_time`` / ``max_over_time`` average / take the peak of the same samples;
``latest`` is an instant query (the last sample at most 5 minutes old, Prometheus' lookback delta).
A pod's series stay in the store after the pod is gone, as in Prometheus, until they leave the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.collector.aggregate import PodRates
from services.collector.promql import COUNTERS, GAUGES, GROWTH

LOOKBACK_DELTA_S = 300.0
"""Prometheus' default query lookback: an instant query sees a sample at most this old."""

BUCKET_PREFIX = "generation_tokens_bucket:"
"""Sample keys of the per-request generation-token histogram's buckets, ``BUCKET_PREFIX + str(le)``; rate() per
bucket gives PodRates.generation_tokens_buckets as the collector's bucket query does."""
TTFT_BUCKET_PREFIX = "ttft_bucket:"
ITL_BUCKET_PREFIX = "itl_bucket:"
"""Sample keys of vllm:time_to_first_token_seconds / vllm:inter_token_latency_seconds buckets (``le`` in s);
rate() per bucket gives PodRates.ttft_buckets / itl_buckets."""
_BUCKET_FIELDS = {BUCKET_PREFIX: "generation_tokens_buckets", TTFT_BUCKET_PREFIX: "ttft_buckets",
                  ITL_BUCKET_PREFIX: "itl_buckets"}

COUNTER_FIELDS = tuple(COUNTERS)
"""The PodRates counter fields, named as the collector's PromQL names them."""
GAUGE_FIELDS = tuple(GAUGES)
"""The PodRates gauge fields."""
GROWTH_FIELDS = {name: tuple(GAUGE_FIELDS[tuple(GAUGES.values()).index((g,))] for g in gauges)
                 for name, gauges in GROWTH.items()}
"""PodRates growth field -> the gauge fields whose deriv() slopes it sums (services/collector/promql.GROWTH)."""


@dataclass(slots=True)
class Series:
    """One pod's samples: times (s) and, per metric field, its values at those times."""

    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def append(self, t_s: float, sample: Mapping[str, float]) -> None:
        """Add a scrape at ``t_s``."""
        self.times.append(t_s)
        for name, value in sample.items():
            self.values.setdefault(name, []).append(float(value))

    def window(self, t_s: float, window_s: float) -> tuple[int, int]:
        """Index range [lo, hi) of the samples in [t_s - window_s, t_s]."""
        lo = hi = len(self.times)
        while lo > 0 and self.times[lo - 1] >= t_s - window_s - 1e-9:
            lo -= 1
        while hi > lo and self.times[hi - 1] > t_s + 1e-9:
            hi -= 1
        return lo, hi


def deriv(times: list[float], values: list[float]) -> float | None:
    """Prometheus' deriv(): the least-squares slope (per second) of gauge samples; None under two samples."""
    if len(times) < 2:
        return None
    mean_t, mean_v = sum(times) / len(times), sum(values) / len(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread <= 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


def extrapolated_rate(times: list[float], values: list[float], start_s: float, end_s: float) -> float | None:
    """Prometheus' rate() of counter samples over [start_s, end_s] (per second); None under two samples."""
    if len(times) < 2:
        return None
    delta = values[-1] - values[0]
    for previous, current in zip(values, values[1:], strict=False):
        if current < previous:  # a counter reset: the counter restarted from 0
            delta += previous
    sampled = times[-1] - times[0]
    if sampled <= 0:
        return None
    average_gap = sampled / (len(times) - 1)
    to_start, to_end = times[0] - start_s, end_s - times[-1]
    if delta > 0 and values[0] >= 0:
        to_start = min(to_start, sampled * (values[0] / delta))
    threshold = average_gap * 1.1
    interval = sampled + (to_start if to_start < threshold else average_gap / 2)
    interval += to_end if to_end < threshold else average_gap / 2
    return delta * (interval / sampled) / (end_s - start_s)


class Prometheus:
    """Scraped samples per pod name; queries as the collector and the baselines' adapters issue them."""

    def __init__(self) -> None:
        self._series: dict[str, Series] = {}

    def scrape(self, t_s: float, pod: str, sample: Mapping[str, float]) -> None:
        """Store ``pod``'s metrics (counter and gauge fields of PodRates -> value) scraped at ``t_s``."""
        self._series.setdefault(pod, Series()).append(t_s, sample)

    def pods(self) -> list[str]:
        """Pod names with any series."""
        return sorted(self._series)

    def rates(self, pods: Iterable[str], t_s: float, window_s: float) -> dict[str, PodRates]:
        """{pod: PodRates} as the collector's queries return them at ``t_s`` over ``window_s``: counter rates via
        rate(), gauges via avg_over_time(); a pod without samples in the window is absent."""
        found: dict[str, PodRates] = {}
        for pod in pods:
            series = self._series.get(pod)
            if series is None:
                continue
            lo, hi = series.window(t_s, window_s)
            if hi <= lo:
                continue
            times = series.times[lo:hi]
            figures: dict[str, float | None] = {}
            for name in COUNTER_FIELDS:
                values = series.values.get(name)
                figures[name] = extrapolated_rate(times, values[lo:hi], t_s - window_s, t_s) if values else None
            for name in GAUGE_FIELDS:
                values = series.values.get(name)
                figures[name] = sum(values[lo:hi]) / (hi - lo) if values else None
            buckets: dict[str, list[tuple[float, float]]] = {}
            for name, values in series.values.items():
                prefix = name[:name.find(":") + 1]
                if prefix in _BUCKET_FIELDS:
                    rate = extrapolated_rate(times, values[lo:hi], t_s - window_s, t_s)
                    if rate is not None:
                        buckets.setdefault(_BUCKET_FIELDS[prefix], []).append((float(name.removeprefix(prefix)), rate))
            for name, gauges in GROWTH_FIELDS.items():
                slopes = [deriv(times, series.values[g][lo:hi]) for g in gauges if g in series.values]
                figures[name] = None if not slopes or None in slopes else sum(slopes)  # type: ignore[arg-type]
            found[pod] = PodRates(**figures, **{key: tuple(sorted(pairs)) for key, pairs in buckets.items()})
        return found

    def max_over_time(self, pod: str, name: str, t_s: float, window_s: float) -> float | None:
        """max_over_time(name[window]) for ``pod`` at ``t_s``; None without samples."""
        series = self._series.get(pod)
        if series is None or name not in series.values:
            return None
        lo, hi = series.window(t_s, window_s)
        return max(series.values[name][lo:hi]) if hi > lo else None

    def latest(self, pod: str, name: str, t_s: float) -> float | None:
        """An instant query of ``name`` for ``pod`` at ``t_s`` (the last sample within the lookback delta)."""
        series = self._series.get(pod)
        if series is None or name not in series.values:
            return None
        lo, hi = series.window(t_s, LOOKBACK_DELTA_S)
        return series.values[name][hi - 1] if hi > lo else None
