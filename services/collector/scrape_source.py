"""Metrics read straight from the pods' /metrics where no Prometheus runs: two scrapes, rates from the
difference.

Each pod is scraped twice, ``interval_s`` apart (all pods concurrently); counter rates are the increase
over the time between the two scrapes of that pod, gauges are the second scrape's value. A counter that
went down (a restarted pod) gives no rate. A pod that cannot be scraped is a warning naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import requests
from prometheus_client.parser import text_string_to_metric_families

from services.collector import promql
from services.collector.aggregate import DeploymentFacts, PodFacts, PodRates, PodRatesByDeployment
from services.core.model import LoadSource

_KEPT_BUCKETS = frozenset({promql.GENERATION_TOKENS_BUCKETS, *(n for names in promql.LATENCY_BUCKETS.values()
                                                                 for n in names)})
"""Histogram buckets kept per ``le``: output lengths (lengths.py) and the TTFT / ITL percentiles."""

Snapshot = tuple[float, dict[str, float]]
"""(monotonic time of the scrape, {vLLM sample name without prefix: value summed over label sets})."""


def sample_totals(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {sample name without ``vllm:``/``vllm_``: sum over its label sets}.

    Only vLLM samples are kept; histogram buckets are dropped except the generation-token, TTFT and
    inter-token histograms', kept per bucket as ``request_generation_tokens_bucket|<le>`` (the output-length
    C2, lengths.py; the latency percentiles, aggregate.measure). Raises
    ValueError on unparsable text.
    """
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if not name.startswith(("vllm:", "vllm_")):
                continue
            key = name[len("vllm:"):]
            if key in _KEPT_BUCKETS and "le" in sample.labels:
                key = f"{key}|{float(sample.labels['le'])!r}"
            elif name.endswith("_bucket"):
                continue
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _first_present(names: Sequence[str], *snapshots: Mapping[str, float]) -> str | None:
    return next((n for n in names if all(n in s for s in snapshots)), None)


def rates_between(first: Snapshot, second: Snapshot) -> PodRates:
    """One pod's PodRates from two snapshots: counter increase / elapsed seconds, gauges from ``second``."""
    (t1, a), (t2, b) = first, second
    elapsed = t2 - t1
    values: dict[str, float] = {}
    for field, names in promql.COUNTERS.items():
        name = _first_present(names, a, b)
        if name is not None and elapsed > 0 and b[name] >= a[name]:
            values[field] = (b[name] - a[name]) / elapsed
    for field, names in promql.GAUGES.items():
        name = _first_present(names, b)
        if name is not None:
            values[field] = b[name]
    buckets = _bucket_rates(promql.GENERATION_TOKENS_BUCKETS, a, b, elapsed)
    if buckets:
        values["generation_tokens_buckets"] = buckets
    for field, names in promql.LATENCY_BUCKETS.items():
        found = next((found for found in (_bucket_rates(n, a, b, elapsed) for n in names) if found), None)
        if found:
            values[field] = found
    return replace(PodRates(), **values)


def _bucket_rates(name: str, a: Mapping[str, float], b: Mapping[str, float], elapsed: float
                  ) -> tuple[tuple[float, float], ...]:
    """((le, increase / elapsed), ...) of histogram buckets ``name`` between two snapshots, in le order; a
    bucket that went down (a restart) is left out."""
    prefix = name + "|"
    return tuple(sorted((float(key[len(prefix):]), (b[key] - a[key]) / elapsed) for key in b
                        if key.startswith(prefix) and key in a and b[key] >= a[key] and elapsed > 0))


def fetch_metrics(url: str, timeout_s: float) -> str:
    """GET ``url`` and return its text. Raises requests.RequestException on failure or a non-200 status."""
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return response.text


class DirectScrapeSource:
    """Reads per-pod rates by scraping each managed pod's metrics endpoint twice, ``interval_s`` apart."""

    source = LoadSource.DIRECT_SCRAPE

    def __init__(self, interval_s: float, timeout_s: float, *,
                 fetch: Callable[[str, float], str] = fetch_metrics,
                 sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._fetch = fetch
        self._sleep = sleep
        self._now = now

    def _scrape(self, pod: PodFacts) -> Snapshot:
        text = self._fetch(f"http://{pod.ip}:{pod.metrics_port}{pod.metrics_path}", self._timeout_s)
        return self._now(), sample_totals(text)

    def _scrape_all(self, pods: Sequence[tuple[str, PodFacts]],
                    failed: dict[tuple[str, str], str]) -> dict[tuple[str, str], Snapshot]:
        snapshots: dict[tuple[str, str], Snapshot] = {}
        with ThreadPoolExecutor(max_workers=min(16, max(len(pods), 1))) as pool:
            futures = {(ns, pod.name): pool.submit(self._scrape, pod) for ns, pod in pods}
            for key, future in futures.items():
                try:
                    snapshots[key] = future.result()
                except (requests.RequestException, ValueError) as err:
                    failed.setdefault(key, f"{type(err).__name__}: {str(err)[:120]}")
        return snapshots

    def read(self, deployments: Sequence[DeploymentFacts],
             window: str = "") -> tuple[PodRatesByDeployment, list[str]]:
        """Per-pod rates of ``deployments`` -> ({(namespace, Deployment): {pod: PodRates}}, warnings); the rates
        are over the scrape interval whatever ``window`` asks (two scrapes are the short window already).

        Pods without an IP or metrics port are not scraped. Never raises; takes about ``interval_s``.
        """
        pods = [(d.ref.namespace, p) for d in deployments for p in d.pods if p.ip and p.metrics_port]
        if not pods:
            return {}, []
        failed: dict[tuple[str, str], str] = {}
        first = self._scrape_all(pods, failed)
        self._sleep(self._interval_s)
        second = self._scrape_all([(ns, p) for ns, p in pods if (ns, p.name) in first], failed)
        grouped: dict[tuple[str, str], dict[str, PodRates]] = {}
        for facts in deployments:
            for pod in facts.pods:
                key = (facts.ref.namespace, pod.name)
                if key in first and key in second:
                    rates = rates_between(first[key], second[key])
                    grouped.setdefault((facts.ref.namespace, facts.ref.name), {})[pod.name] = rates
        warnings = [f"pod {ns}/{name}: metrics could not be scraped ({why})"
                    for (ns, name), why in sorted(failed.items())]
        return grouped, warnings
