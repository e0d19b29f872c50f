"""vLLM metric names and the PromQL that reads them (docs/contract.md s4); pure.

Every figure is read per (namespace, pod) so that pods can be summed per Deployment afterwards. Both the
``vllm:`` and ``vllm_`` spellings match (a ``__name__`` regex), and where vLLM renamed a metric the new
name is preferred per pod with PromQL ``or`` (``inter_token_latency`` over ``time_per_output_token``,
``kv_cache_usage_perc`` over ``gpu_cache_usage_perc``). Label values are escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType

NAMESPACE_LABEL = "namespace"
POD_LABEL = "pod"

COUNTERS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "requests_per_s": ("request_success_total",),
    "prompt_tokens_per_s": ("prompt_tokens_total",),
    "generation_tokens_per_s": ("generation_tokens_total",),
    "request_prompt_tokens_sum_per_s": ("request_prompt_tokens_sum",),
    "request_prompt_tokens_count_per_s": ("request_prompt_tokens_count",),
    "request_generation_tokens_sum_per_s": ("request_generation_tokens_sum",),
    "request_generation_tokens_count_per_s": ("request_generation_tokens_count",),
    "itl_sum_per_s": ("inter_token_latency_seconds_sum", "time_per_output_token_seconds_sum"),
    "itl_count_per_s": ("inter_token_latency_seconds_count", "time_per_output_token_seconds_count"),
    "ttft_sum_per_s": ("time_to_first_token_seconds_sum",),
    "ttft_count_per_s": ("time_to_first_token_seconds_count",),
    "e2e_sum_per_s": ("e2e_request_latency_seconds_sum",),
    "e2e_count_per_s": ("e2e_request_latency_seconds_count",),
})
"""PodRates field -> vLLM counter names without the ``vllm:`` prefix, preferred name first."""

GAUGES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "requests_running": ("num_requests_running",),
    "requests_waiting": ("num_requests_waiting",),
    "kv_cache_usage": ("kv_cache_usage_perc", "gpu_cache_usage_perc"),
})
"""PodRates field -> vLLM gauge names without the prefix, preferred name first."""

GROWTH: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "in_system_growth_per_s": ("num_requests_running", "num_requests_waiting"),
})
"""PodRates field -> gauges whose per-second slopes (PromQL ``deriv``) are summed: the growth of the requests in
the pod (running + waiting). Arrivals = completions + this growth, also when the pod is saturated and its
completion rate stops following the offered load (services/collector/forecast.py)."""

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def window_seconds(window: str) -> float:
    """A Prometheus duration ("20s", "1m", "1h30m") in seconds. Raises ValueError when it does not parse."""
    parts = _DURATION_PART.findall(window)
    if not parts or "".join(n + u for n, u in parts) != window:
        raise ValueError(f"not a Prometheus duration: {window!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding ``value`` (backslash, quote and newline escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_alternatives(values: Iterable[str]) -> str:
    """An RE2 regex matching exactly one of ``values`` (each escaped), as a quoted PromQL literal."""
    return quote("|".join(re.escape(v) for v in sorted(set(values))))


def _selector(name: str, namespaces: Sequence[str]) -> str:
    matchers = [f"__name__=~{quote('vllm[:_]' + re.escape(name))}"]
    if namespaces:
        matchers.append(f"{NAMESPACE_LABEL}=~{regex_alternatives(namespaces)}")
    return "{" + ", ".join(matchers) + "}"


def _by_pod(expression: str) -> str:
    return f"sum by ({NAMESPACE_LABEL}, {POD_LABEL}) ({expression})"


def counter_query(names: Sequence[str], namespaces: Sequence[str], window: str) -> str:
    """Per-pod rate (per second) of the first of ``names`` each pod has, over ``window``.

    ``namespaces`` limits the series (empty = all). Example for one name:
    ``sum by (namespace, pod) (rate({__name__=~"vllm[:_]request_success_total", namespace=~"a"}[1m]))``.
    """
    return " or ".join(_by_pod(f"rate({_selector(n, namespaces)}[{window}])") for n in names)


def gauge_query(names: Sequence[str], namespaces: Sequence[str], window: str) -> str:
    """Per-pod mean over ``window`` of the first of gauge ``names`` each pod has."""
    return " or ".join(_by_pod(f"avg_over_time({_selector(n, namespaces)}[{window}])") for n in names)


def growth_query(names: Sequence[str], namespaces: Sequence[str], window: str) -> str:
    """Per-pod sum of the least-squares slopes (per second) of gauges ``names`` over ``window``."""
    return " + ".join(_by_pod(f"deriv({_selector(n, namespaces)}[{window}])") for n in names)


def queries(namespaces: Sequence[str], window: str) -> dict[str, str]:
    """PodRates field -> the PromQL that reads it for pods in ``namespaces`` over ``window``."""
    built = {f: counter_query(names, namespaces, window) for f, names in COUNTERS.items()}
    built.update({f: gauge_query(names, namespaces, window) for f, names in GAUGES.items()})
    built.update({f: growth_query(names, namespaces, window) for f, names in GROWTH.items()})
    return built


GENERATION_TOKENS_BUCKETS = "request_generation_tokens_bucket"
"""The per-request generation-token histogram's buckets: the output-length variability (lengths.py)."""


LATENCY_BUCKETS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ttft_buckets": ("time_to_first_token_seconds_bucket",),
    "itl_buckets": ("inter_token_latency_seconds_bucket", "time_per_output_token_seconds_bucket"),
})
"""PodRates field -> the latency histograms' bucket series (preferred name first) whose percentiles the
collector reports (histogram_quantile)."""


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile (0 <= q <= 1) of cumulative histogram ``buckets`` ((le, count or rate), any order), with
    Prometheus's ``histogram_quantile`` interpolation: linear within the bucket holding rank q x total, the
    first bucket's lower bound 0; the +Inf bucket gives the highest finite bound. None without an +Inf bucket,
    with fewer than two buckets or no observations; counts that decrease with le are raised to monotone."""
    ordered = sorted((le, count) for le, count in buckets if math.isfinite(count) and not math.isnan(le))
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    counts, running = [], 0.0
    for _, count in ordered:
        running = max(running, count)
        counts.append(running)
    total = counts[-1]
    if not total > 0:
        return None
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    lower, below = (0.0, 0.0) if b == 0 else (ordered[b - 1][0], counts[b - 1])
    upper, within = ordered[b][0], counts[b] - below
    return lower + (upper - lower) * ((rank - below) / within if within > 0 else 1.0)


def bucket_query(name: str, namespaces: Sequence[str], window: str) -> str:
    """Per-pod, per-bucket rate of histogram buckets ``name`` over ``window``, e.g.
    ``sum by (namespace, pod, le) (rate({__name__=~"vllm[:_]request_generation_tokens_bucket"}[1m]))``."""
    return f"sum by ({NAMESPACE_LABEL}, {POD_LABEL}, le) (rate({_selector(name, namespaces)}[{window}]))"


def _vector_entries(result: object, number_labels: tuple[str, ...] = ()
                    ) -> Iterator[tuple[Mapping[str, str], float, tuple[float, ...]]]:
    """(labels, value, the ``number_labels`` as numbers, "nan" when absent) of each entry of an instant-vector
    result (``[{"metric": {...}, "value": [t, "v"]}]``). Raises ValueError when ``result`` is not a list of
    such entries or a value or number label is not a number."""
    if not isinstance(result, list):
        raise ValueError(f"expected a vector result, got {type(result).__name__}")
    for entry in result:
        try:
            labels, (_, raw) = entry["metric"], entry["value"]
            numbers = tuple(float(labels.get(name, "nan")) for name in number_labels)
            value = float(raw)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed vector entry {entry!r}") from err
        yield labels, value, numbers


def parse_buckets(result: object) -> dict[tuple[str, str], tuple[tuple[float, float], ...]]:
    """A per-bucket instant vector -> {(namespace, pod): ((le, rate), ...)} in ``le`` order. Entries
    without namespace, pod or a numeric ``le`` ("+Inf" is infinity), or with a non-finite value, are dropped.
    Raises ValueError when ``result`` is not a list of vector entries."""
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for labels, value, (le,) in _vector_entries(result, ("le",)):
        key = (labels.get(NAMESPACE_LABEL, ""), labels.get(POD_LABEL, ""))
        if all(key) and math.isfinite(value) and not math.isnan(le):
            buckets.setdefault(key, []).append((le, value))
    return {key: tuple(sorted(values)) for key, values in buckets.items()}


def parse_vector(result: object) -> dict[tuple[str, str], float]:
    """An instant-vector result (``[{"metric": {...}, "value": [t, "v"]}]``) -> {(namespace, pod): value}.

    Entries without namespace and pod labels, or whose value is not a finite number (NaN, +Inf, garbage),
    are dropped. Raises ValueError when ``result`` is not a list of such entries.
    """
    values: dict[tuple[str, str], float] = {}
    for labels, value, _ in _vector_entries(result):
        key = (labels.get(NAMESPACE_LABEL, ""), labels.get(POD_LABEL, ""))
        if all(key) and math.isfinite(value):
            values[key] = value
    return values


def parse_matrix(result: object) -> dict[tuple[str, str], dict[float, float]]:
    """A range-query result (``[{"metric": {...}, "values": [[t, "v"], ...]}]``) -> {(namespace, pod): {t: v}};
    entries without namespace and pod labels and non-finite values are dropped. Raises ValueError when
    ``result`` is not a list of such entries."""
    if not isinstance(result, list):
        raise ValueError(f"expected a matrix result, got {type(result).__name__}")
    series: dict[tuple[str, str], dict[float, float]] = {}
    for entry in result:
        try:
            labels, points = entry["metric"], [(float(t), float(v)) for t, v in entry["values"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed matrix entry {str(entry)[:200]}") from err
        key = (labels.get(NAMESPACE_LABEL, ""), labels.get(POD_LABEL, ""))
        if all(key):
            series.setdefault(key, {}).update({t: v for t, v in points if math.isfinite(v)})
    return series


_POD_SUFFIX = re.compile(r"^[a-z0-9]{1,10}-[a-z0-9]{5}$")


def pod_of_deployment(pod: str, deployment: str) -> bool:
    """Whether ``pod`` is named as a pod of Deployment ``deployment``'s ReplicaSets (``<deployment>-<hash>-<x5>``),
    so that pods gone since (still in a range query's history) count for their Deployment."""
    return pod.startswith(deployment + "-") and bool(_POD_SUFFIX.match(pod[len(deployment) + 1:]))


CLASS_REQUESTS = "inference_objective_request_total"
"""A pool router's per-class request counter (labels objective, priority, deployment; its target's namespace
and pool), the Gateway API Inference Extension's name (docs/contract.md s10)."""
DEPLOYMENT_LABEL = "deployment"
OBJECTIVE_LABEL = "objective"


def class_rate_query(namespaces: Sequence[str], window: str) -> str:
    """Per (namespace, Deployment, class) the rate (per s) of requests a pool router sent there."""
    matchers = f"{{{NAMESPACE_LABEL}=~{regex_alternatives(namespaces)}}}" if namespaces else ""
    return (f"sum by ({NAMESPACE_LABEL}, {DEPLOYMENT_LABEL}, {OBJECTIVE_LABEL}) "
            f"(rate({CLASS_REQUESTS}{matchers}[{window}]))")


def parse_class_rates(result: object) -> dict[tuple[str, str], dict[str, float]]:
    """class_rate_query's answer -> {(namespace, Deployment): {class: per-second rate}}; entries without the
    three labels or with a non-finite value are dropped. Raises ValueError when ``result`` is not a vector."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for labels, value, _ in _vector_entries(result):
        key = (labels.get(NAMESPACE_LABEL, ""), labels.get(DEPLOYMENT_LABEL, ""))
        name = labels.get(OBJECTIVE_LABEL, "")
        if all(key) and name and math.isfinite(value) and value >= 0:
            out.setdefault(key, {})[name] = value
    return out
