"""Metrics from Prometheus through prometheus-api-client (PrometheusConnect.custom_query with a timeout).

One query per figure for all managed pods (see promql.py), so a cycle costs a fixed number of queries
whatever the number of servers. The bearer token file is re-read at every collection (projected service
account tokens rotate); the CA bundle verifies HTTPS. Any failure (unreachable, timeout, HTTP error,
malformed answer) makes the whole read empty with one warning: the servers then fall back to their labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from services.collector import forecast, promql
from services.collector.aggregate import DeploymentFacts, PodRates, PodRatesByDeployment
from services.core.model import LoadSource
from services.runtime.logs import get_logger

_log = get_logger("collector")
T = TypeVar("T")
_QUERY_ERRORS = (requests.RequestException, PrometheusApiClientException, ValueError, KeyError, TypeError)


def connect(url: str, token_path: str = "", ca_path: str = "") -> PrometheusConnect:
    """A PrometheusConnect for ``url`` without retries (a cycle must not wait on back-offs), with the
    bearer token read from ``token_path`` and ``ca_path`` as CA bundle when given. Raises OSError when the
    token file cannot be read."""
    headers = None
    if token_path:
        with open(token_path, encoding="utf-8") as handle:
            headers = {"Authorization": f"Bearer {handle.read().strip()}"}
    session = requests.Session()
    session.verify = ca_path or True
    return PrometheusConnect(url=url, headers=headers, retry=Retry(total=0, raise_on_status=False),
                             session=session)


class PrometheusSource:
    """Reads per-pod rates of the managed Deployments from Prometheus over ``window`` (e.g. "1m")."""

    source = LoadSource.PROMETHEUS

    def __init__(self, url: str, window: str, timeout_s: float, *, token_path: str = "", ca_path: str = "",
                 connector: Callable[[str, str, str], Any] = connect) -> None:
        self._url = url
        self._window = window
        self._timeout_s = timeout_s
        self._token_path = token_path
        self._ca_path = ca_path
        self._connector = connector

    def read(self, deployments: Sequence[DeploymentFacts],
             window: str = "") -> tuple[PodRatesByDeployment, list[str]]:
        """Per-pod rates of ``deployments`` over ``window`` ("" = the configured one) -> ({(namespace,
        Deployment): {pod: PodRates}}, warnings).

        Never raises: when Prometheus cannot answer, returns ({}, [one warning saying why]).
        """
        namespaces = sorted({d.ref.namespace for d in deployments})
        if not namespaces:
            return {}, []
        try:
            figures = self._asked(lambda client: self._figures(client, namespaces, window or self._window))
        except (*_QUERY_ERRORS, OSError) as err:
            _log.warning("prometheus_query_failed", url=self._url, error=str(err)[:300])
            return {}, [f"Prometheus at {self._url} gave no usable answer ({_short(err)}); "
                        f"load from labels"]
        return group_by_deployment(deployments, figures), []

    def _asked(self, ask: Callable[[Any], T]) -> T:
        """``ask(client)`` over a new connection, closed after; raises what the connection or the queries raise."""
        client = self._connector(self._url, self._token_path, self._ca_path)
        try:
            return ask(client)
        finally:
            client.close()

    def _figures(self, client: Any, namespaces: Sequence[str], window: str) -> dict[str, dict[tuple[str, str], Any]]:
        """Every per-pod figure ``read`` needs, by name: the counters' rates and the buckets' rates."""
        figures: dict[str, dict[tuple[str, str], Any]] = {
            name: promql.parse_vector(client.custom_query(query, timeout=self._timeout_s))
            for name, query in promql.queries(namespaces, window).items()}
        buckets = promql.bucket_query(promql.GENERATION_TOKENS_BUCKETS, namespaces, window)
        figures["generation_tokens_buckets"] = promql.parse_buckets(
            client.custom_query(buckets, timeout=self._timeout_s))
        for field, names in promql.LATENCY_BUCKETS.items():  # per pod the first name it has
            figures[field] = {}
            for name in reversed(names):
                figures[field].update(promql.parse_buckets(client.custom_query(
                    promql.bucket_query(name, namespaces, window), timeout=self._timeout_s)))
        return figures


    def class_rates(self, deployments: Sequence[DeploymentFacts],
                    window: str = "") -> tuple[dict[tuple[str, str], dict[str, float]], list[str]]:
        """Per pool Deployment the arrival rate of each class (RPM) its router counted over ``window``
        (promql.class_rate_query) -> ({(namespace, Deployment): {class: rpm}}, warnings). Never raises."""
        namespaces = sorted({d.ref.namespace for d in deployments})
        if not namespaces:
            return {}, []
        query = promql.class_rate_query(namespaces, window or self._window)
        try:
            found = self._asked(lambda client: promql.parse_class_rates(client.custom_query(
                query, timeout=self._timeout_s)))
        except (*_QUERY_ERRORS, OSError) as err:
            _log.warning("prometheus_class_rates_failed", url=self._url, error=str(err)[:300])
            return {}, [f"Prometheus at {self._url}: no per-class rates ({_short(err)}); pool classes split by "
                        f"labels"]
        wanted = {(d.ref.namespace, d.ref.name) for d in deployments}
        return {k: {c: v * 60.0 for c, v in rates.items()} for k, rates in found.items() if k in wanted}, []

    def arrival_history(self, deployments: Sequence[DeploymentFacts], lookback_s: float, step_s: float,
                        end_s: float) -> tuple[dict[tuple[str, str], list[float]], list[str]]:
        """Arrival rates (req/min: completions + growth of running + waiting, services/collector/forecast.py)
        per Deployment over [end_s - lookback_s, end_s) every ``step_s``, from two range queries; pods gone
        since count by their names (promql.pod_of_deployment). Never raises: ({}, [warning]) on failure."""
        namespaces = sorted({d.ref.namespace for d in deployments})
        if not namespaces:
            return {}, []
        window = self._window
        expressions = (promql.counter_query(promql.COUNTERS["requests_per_s"], namespaces, window),
                       *(promql.growth_query(names, namespaces, window) for names in promql.GROWTH.values()))
        start, end = datetime.fromtimestamp(end_s - lookback_s, UTC), datetime.fromtimestamp(end_s, UTC)
        try:
            matrices = self._asked(lambda client: [promql.parse_matrix(client.custom_query_range(
                query, start_time=start, end_time=end, step=f"{max(int(step_s), 1)}s",
                params={"timeout": f"{max(round(self._timeout_s * 1000), 1)}ms"}))
                for query in expressions])  # Prometheus durations are whole numbers of a unit: not "5.0s"
        except (*_QUERY_ERRORS, OSError) as err:
            _log.warning("prometheus_history_failed", url=self._url, error=str(err)[:300])
            return {}, [f"Prometheus at {self._url}: no rate history ({_short(err)}); forecast from the current rate"]
        found = {}
        for facts in deployments:
            own = {p.name for p in facts.pods}
            series = [{t: v * 60.0 for t, v in by_time.items()} for matrix in matrices
                      for (namespace, pod), by_time in matrix.items() if namespace == facts.ref.namespace
                      and (pod in own or promql.pod_of_deployment(pod, facts.ref.name))]
            found[(facts.ref.namespace, facts.ref.name)] = forecast.sum_series(series, end_s - step_s / 2.0)
        return found, []


def _short(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"{type(err).__name__}: {text[:160]}"


def group_by_deployment(deployments: Sequence[DeploymentFacts],
                        figures: dict[str, dict[tuple[str, str], Any]]) -> PodRatesByDeployment:
    """{field: {(namespace, pod): value}} -> {(namespace, Deployment): {pod: PodRates}} for the Deployments'
    own pods; a pod with no figure at all is left out."""
    grouped: dict[tuple[str, str], dict[str, PodRates]] = {}
    for facts in deployments:
        pods: dict[str, PodRates] = {}
        for pod in facts.pods:
            key = (facts.ref.namespace, pod.name)
            values = {name: by_pod[key] for name, by_pod in figures.items() if key in by_pod}
            if values:
                pods[pod.name] = dataclasses.replace(PodRates(), **values)
        if pods:
            grouped[(facts.ref.namespace, facts.ref.name)] = pods
    return grouped
