"""Pure aggregation: managed Deployment facts + per-pod metric rates -> servers with load and observations.

Inputs are what the sources read (DeploymentFacts, PodRates); the output is a services.core.model
Collection: ManagedServers (server, Deployment, replicas, whether the load was measured) and the warnings
met on the way. Label parsing
follows docs/contract.md s3. Fallback rule: a load figure the metrics do not give comes from the
Deployment's load labels, and the answer says so (ObservedMetrics.source, warnings); a server whose
arrival rate or output tokens are known from neither is skipped, never reported as zero load.

This module is pure: no I/O, clock, environment, gRPC, Kubernetes or Prometheus imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from services.collector import promql
from services.collector.lengths import out_tokens_c2
from services.core import bounds, routing
from services.core import model as m
from services.core.errors import InvalidInputError
from services.core.labels import LabelLoad, ServerLabels, parse_labels


@dataclass(frozen=True, slots=True)
class PodFacts:
    """One pod of a managed Deployment: where its /metrics is served (``ip`` "" when not yet assigned)."""

    name: str
    ip: str = ""
    ready: bool = False
    metrics_port: int = 0
    metrics_path: str = "/metrics"
    startup_s: float | None = None
    """Seconds from the pod's creation to its Ready condition (None while not Ready or unknown)."""


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """A managed Deployment as read from the Kubernetes API: labels, replica counts and its pods."""

    ref: m.KubeRef
    labels: Mapping[str, str] = field(default_factory=dict)
    spec_replicas: int = 0
    ready_replicas: int = 0
    pods: tuple[PodFacts, ...] = ()

    @property
    def where(self) -> str:
        """``Deployment namespace/name``, the prefix of every warning about it."""
        return f"Deployment {self.ref.namespace}/{self.ref.name}"


@dataclass(frozen=True, slots=True)
class PodRates:
    """One pod's figures over the window: counters as per-second rates, gauges as current values.

    None means the pod did not report the figure (a missing or non-finite series).
    """

    requests_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    request_prompt_tokens_sum_per_s: float | None = None
    request_prompt_tokens_count_per_s: float | None = None
    request_generation_tokens_sum_per_s: float | None = None
    request_generation_tokens_count_per_s: float | None = None
    itl_sum_per_s: float | None = None
    itl_count_per_s: float | None = None
    ttft_sum_per_s: float | None = None
    ttft_count_per_s: float | None = None
    e2e_sum_per_s: float | None = None
    e2e_count_per_s: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage: float | None = None
    generation_tokens_buckets: tuple[tuple[float, float], ...] | None = None
    """vllm:request_generation_tokens buckets as ((le, per-second rate), ...), cumulative as exposed."""
    in_system_growth_per_s: float | None = None
    """Slope of running + waiting requests (per s; negative while a backlog drains)."""
    ttft_buckets: tuple[tuple[float, float], ...] | None = None
    itl_buckets: tuple[tuple[float, float], ...] | None = None
    """vLLM's TTFT and inter-token latency buckets as ((le s, per-second rate), ...), cumulative as exposed."""


PodRatesByDeployment = Mapping[tuple[str, str], Mapping[str, PodRates]]
"""(namespace, Deployment name) -> {pod name: PodRates}; a Deployment absent had no data at all."""


@dataclass(frozen=True, slots=True)
class Measurement(m.ObservedMetrics):
    """A Deployment's figures summed over its pods: the observed latencies and gauges (ObservedMetrics, whose
    ready replicas and source are filled in later) and the load figures; None where unknown. Rates rpm,
    latencies ms."""

    arrival_rate_rpm: float | None = None
    avg_in_tokens: float | None = None
    avg_out_tokens: float | None = None
    out_tokens_c2: float | None = None
    in_system_growth_rpm: float | None = None
    """Growth of the requests in the pods (running + waiting) per minute; arrivals = completions + growth."""


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _total(pods: Sequence[PodRates], name: str) -> float | None:
    values = [v for v in (_finite(getattr(p, name)) for p in pods) if v is not None]
    return sum(values) if values else None


def _ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator * scale


def _avg_tokens(pods: Sequence[PodRates], kind: str, requests: float | None) -> float | None:
    """Average ``kind`` (prompt | generation) tokens per request: from the per-request histograms
    (vllm:request_<kind>_tokens sum / count, both observed at completion) when every pod has them and they
    counted requests, else the
    token counter over the request counter (docs/contract.md s4). The counters advance at different moments
    (prompt tokens at admission, generation tokens per iteration, requests at completion), so over a short
    window at a low rate their ratio is off by the requests in flight at its two ends; the histograms are not."""
    counts = [_finite(getattr(p, f"request_{kind}_tokens_count_per_s")) for p in pods]
    if pods and all(c is not None for c in counts) and sum(counts) > 0:
        return _ratio(_total(pods, f"request_{kind}_tokens_sum_per_s"), sum(counts))
    return _ratio(_total(pods, f"{kind}_tokens_per_s"), requests)


def measure(pods: Sequence[PodRates]) -> Measurement:
    """Sum per-pod rates into one Deployment's Measurement.

    Arrival rate = completed requests per s x 60 (None when no request completed: an idle window is no
    data); token averages per request from the per-request token histograms, else token rate / request rate
    (see _avg_tokens); latencies = histogram sum rate / count rate in ms; running and waiting are summed over
    pods, KV-cache use is the pods' mean (0..1).
    """
    requests = _total(pods, "requests_per_s")
    kv_values = [v for v in (_finite(p.kv_cache_usage) for p in pods) if v is not None]
    return Measurement(
        arrival_rate_rpm=requests * 60.0 if requests else None,
        avg_in_tokens=_avg_tokens(pods, "prompt", requests),
        avg_out_tokens=_avg_tokens(pods, "generation", requests),
        itl_ms=_ratio(_total(pods, "itl_sum_per_s"), _total(pods, "itl_count_per_s"), 1000.0),
        ttft_ms=_ratio(_total(pods, "ttft_sum_per_s"), _total(pods, "ttft_count_per_s"), 1000.0),
        e2e_ms=_ratio(_total(pods, "e2e_sum_per_s"), _total(pods, "e2e_count_per_s"), 1000.0),
        requests_running=_total(pods, "requests_running"),
        requests_waiting=_total(pods, "requests_waiting"),
        kv_cache_usage=sum(kv_values) / len(kv_values) if kv_values else None,
        out_tokens_c2=_out_tokens_c2(pods),
        in_system_growth_rpm=_growth_rpm(pods),
        **_percentiles(pods),
    )


def _percentiles(pods: Sequence[PodRates]) -> dict[str, float | None]:
    """{"ttft_ms_p50": .., "itl_ms_p99": ..}: histogram_quantile over the buckets of the pods that report them,
    summed per ``le`` (Prometheus's sum by (le)), in ms; None without observations."""
    figures: dict[str, float | None] = {}
    for metric in ("ttft", "itl"):
        summed: dict[float, float] = {}
        for pod in pods:
            for le, rate in getattr(pod, f"{metric}_buckets") or ():
                summed[le] = summed.get(le, 0.0) + rate
        for q in m.SLO_PERCENTILES:
            value = promql.histogram_quantile(q / 100.0, summed.items()) if summed else None
            figures[f"{metric}_ms_p{q}"] = None if value is None else value * 1000.0
    return figures


def _growth_rpm(pods: Sequence[PodRates]) -> float | None:
    values = [p.in_system_growth_per_s for p in pods
              if p.in_system_growth_per_s is not None and math.isfinite(p.in_system_growth_per_s)]
    return sum(values) * 60.0 if values else None


def _out_tokens_c2(pods: Sequence[PodRates]) -> float | None:
    """The output-length C2 from the generation-token histograms of all pods (their buckets summed) and the
    mean from the same histograms; None unless every pod reports them (lengths.out_tokens_c2)."""
    if not pods or any(p.generation_tokens_buckets is None for p in pods):
        return None
    counts = [_finite(p.request_generation_tokens_count_per_s) for p in pods]
    if any(c is None for c in counts) or sum(counts) <= 0:  # type: ignore[arg-type]
        return None
    mean = _ratio(_total(pods, "request_generation_tokens_sum_per_s"), sum(counts))  # type: ignore[arg-type]
    summed: dict[float, float] = {}
    for pod in pods:
        for le, rate in pod.generation_tokens_buckets or ():
            summed[le] = summed.get(le, 0.0) + rate
    return out_tokens_c2(sorted(summed.items()), mean)


def _pick(measured: float | None, labelled: float | None, what: str, used: list[str]) -> float | None:
    if measured is not None:
        return measured
    if labelled is not None:
        used.append(what)
    return labelled


def choose_load(measured: Measurement, labelled: LabelLoad, source: m.LoadSource,
                where: str) -> tuple[m.Load | None, m.LoadSource, list[str]]:
    """Each load figure from the metrics if known, else from the labels; returns (load, source, warnings).

    ``source`` is where the arrival rate came from. Load is None (the server cannot be sized) when the
    arrival rate or output tokens are known from neither; missing input tokens count as 0 with a warning.
    """
    used: list[str] = []
    rate = _pick(measured.arrival_rate_rpm, labelled.rpm, "arrival rate", used)
    out_tokens = _pick(measured.avg_out_tokens, labelled.out_tokens, "output tokens", used)
    in_tokens = _pick(measured.avg_in_tokens, labelled.in_tokens, "input tokens", used)
    if rate is None or out_tokens is None:
        missing = "arrival rate" if rate is None else "output tokens"
        return None, source, [f"{where}: skipped: {missing} unknown: no {source.value} data and no load label"]
    warnings = []
    if used:
        live = measured.requests_running is not None or measured.requests_waiting is not None
        why = "no request completed in the window" if live else f"no {source.value} data in the window"
        warnings.append(f"{where}: {', '.join(used)} from load labels: {why}")
    if in_tokens is None:
        in_tokens = 0.0
        warnings.append(f"{where}: input tokens unknown (no metrics, no label); counted as 0")
    arrival_source = source if measured.arrival_rate_rpm is not None else m.LoadSource.LABELS
    c2 = measured.out_tokens_c2 if measured.avg_out_tokens is not None else None
    return m.Load(rate, in_tokens, out_tokens, c2), arrival_source, warnings


def _current_cost(static: m.SystemData | None, model: str, accelerator: str, replicas: int) -> float:
    if static is None or not accelerator:
        return 0.0
    acc, perf = static.accelerator(accelerator), static.perf(model, accelerator)
    if acc is None or perf is None:
        return 0.0
    return acc.cost_per_hour * max(perf.acc_count, 1) * replicas


def build_server(facts: DeploymentFacts, labels: ServerLabels, load: m.Load, observed: m.ObservedMetrics,
                 static: m.SystemData | None) -> m.Server:
    """The Server of one Deployment: identity and options from labels, current allocation = spec replicas
    on the labelled accelerator with its cost from the data (0 when unknown) and the observed latency."""
    current = m.Allocation(
        accelerator=labels.accelerator, num_replicas=facts.spec_replicas, max_batch=labels.max_batch,
        cost_per_hour=_current_cost(static, labels.model, labels.accelerator, facts.spec_replicas),
        itl_ms=observed.itl_ms or 0.0, ttft_ms=observed.ttft_ms or 0.0, load=load,
    )
    return m.Server(name=labels.name, service_class=labels.service_class, model=labels.model,
                    keep_accelerator=labels.keep_accelerator, min_replicas=labels.min_replicas,
                    max_queue_size=labels.max_queue, current=current, observed=observed)


ClassRates = Mapping[tuple[str, str], Mapping[str, float]]
"""(namespace, Deployment) -> {class: RPM} as a pool router counted them."""


def pool_classes(facts: DeploymentFacts, load: m.Load,
                 routed: Mapping[str, float] | None) -> tuple[tuple[m.PoolClass, ...] | None, list[str]]:
    """A pool Deployment's classes (label inferno.server.classes, priority = position) with their loads, or
    ((), []) for a Deployment that is no pool; (None, [warning]) when its pool labels cannot be read.

    Each class's rate: the router's count for this Deployment (``routed``, when it has any class of the pool);
    else the Deployment's arrival rate split by the label inferno.server.class-shares; else split evenly, with
    a warning. Token lengths are the Deployment's (vLLM does not split them by class)."""
    if routing.POOL_LABEL not in facts.labels:
        return (), []
    try:
        names = routing.parse_classes(facts.labels.get(routing.CLASSES_LABEL, ""))
        shares = (routing.parse_shares(facts.labels[routing.SHARES_LABEL], len(names))
                  if routing.SHARES_LABEL in facts.labels else None)
    except InvalidInputError as err:
        return None, [f"{facts.where}: skipped: pool {facts.labels[routing.POOL_LABEL]!r}: {err}"]
    warnings = []
    if routed and any(n in routed for n in names):
        rates = [routed.get(n, 0.0) for n in names]
    else:
        if shares is None:
            shares = [1.0 / len(names)] * len(names)
            warnings.append(f"{facts.where}: pool classes split evenly: no per-class router counts and no label "
                            f"{routing.SHARES_LABEL}")
        rates = [load.arrival_rate_rpm * share for share in shares]
    classes = tuple(m.PoolClass(n, i, m.Load(r, load.avg_in_tokens, load.avg_out_tokens, load.out_tokens_c2))
                    for i, (n, r) in enumerate(zip(names, rates, strict=True)))
    return classes, warnings


def load_measured(observed: m.ObservedMetrics) -> bool:
    """Whether a server's load was measured: False when its arrival rate came from the load labels and no live
    figure (running or waiting requests) was read, i.e. the metrics were missing (Prometheus down, erroring or
    without series for the pods). An idle server (metrics read, no request completed) counts as measured.
    Decided here once; the actuator holds scale-downs on an unmeasured load (docs/contract.md s4)."""
    return not (observed.source == m.LoadSource.LABELS and observed.requests_running is None
                and observed.requests_waiting is None)


def _observed(measured: Measurement, facts: DeploymentFacts, source: m.LoadSource) -> m.ObservedMetrics:
    values = {f.name: getattr(measured, f.name) for f in fields(m.ObservedMetrics)}
    return m.ObservedMetrics(**{**values, "ready_replicas": facts.ready_replicas, "source": source.value})


def collect_one(facts: DeploymentFacts, pods: Mapping[str, PodRates] | None, source: m.LoadSource,
                static: m.SystemData | None, max_replicas: int = bounds.MAX_REPLICAS,
                routed: Mapping[str, float] | None = None) -> tuple[m.ManagedServer | None, list[str]]:
    """One Deployment -> (ManagedServer, warnings), or (None, warnings) when it cannot be sized.

    ``pods`` are the rates read for its pods (None: the metrics source had nothing for it); only pods
    that belong to the Deployment now are counted; ``max_replicas`` is the default replica cap
    (INFERNO_MAX_REPLICAS), to which minreplicas is clamped; ``routed`` a pool router's per-class rates for it
    (pool_classes).
    """
    labels, warnings = parse_labels(facts.labels, facts.where, static, max_replicas)
    if labels is None:
        return None, warnings
    own = {p.name for p in facts.pods}
    rates = [r for name, r in (pods or {}).items() if name in own]
    measured = measure(rates)
    load, load_source, load_warnings = choose_load(measured, labels.load, source, facts.where)
    warnings.extend(load_warnings)
    if load is None:
        return None, warnings
    observed = _observed(measured, facts, load_source)
    classes, pool_warnings = pool_classes(facts, load, routed)
    warnings.extend(pool_warnings)
    if classes is None:
        return None, warnings
    server = replace(build_server(facts, labels, load, observed, static), pool_classes=classes)
    return m.ManagedServer(server, facts.ref, facts.spec_replicas, facts.ready_replicas,
                           load_measured(observed)), warnings


def _collect_safely(facts: DeploymentFacts, pods: Mapping[str, PodRates] | None, source: m.LoadSource,
                    static: m.SystemData | None, max_replicas: int,
                    routed: Mapping[str, float] | None) -> tuple[m.ManagedServer | None, list[str]]:
    """collect_one, except that an unforeseen error skips this Deployment alone, with a warning naming it."""
    try:
        return collect_one(facts, pods, source, static, max_replicas, routed)
    except Exception as err:  # noqa: BLE001 - one bad Deployment never stops the others
        return None, [f"{facts.where}: skipped: its labels or metrics could not be read "
                      f"({type(err).__name__}: {str(err)[:120]})"]


def collect(deployments: Sequence[DeploymentFacts], rates: PodRatesByDeployment, source: m.LoadSource,
            static: m.SystemData | None, warnings: Sequence[str] = (),
            capacity: m.Capacity | None = None, max_replicas: int = bounds.MAX_REPLICAS,
            class_rates: ClassRates | None = None) -> m.Collection:
    """All managed Deployments -> Collection (managed servers sorted by name, with ``capacity``).

    Deployments are taken in (namespace, name) order. A server name carried by more than one Deployment is
    an error on all of them: none is managed until the names are fixed, each named in a warning (a silent
    pick would let a second Deployment take the server over). A Deployment that cannot be read is skipped
    alone. ``warnings`` (e.g. from the sources) lead the answer's warnings. ``class_rates``: the pool routers'
    per-class rates by Deployment (pool_classes).
    """
    by_name: dict[str, list[tuple[DeploymentFacts, m.ManagedServer]]] = {}
    notes = list(warnings)
    for facts in sorted(deployments, key=lambda d: (d.ref.namespace, d.ref.name)):
        key = (facts.ref.namespace, facts.ref.name)
        managed, more = _collect_safely(facts, rates.get(key), source, static, max_replicas,
                                        (class_rates or {}).get(key))
        notes.extend(more)
        if managed is not None:
            by_name.setdefault(managed.name, []).append((facts, managed))
    found = []
    for name in sorted(by_name):
        claims = by_name[name]
        if len(claims) == 1:
            found.append(claims[0][1])
            continue
        places = ", ".join(f"{f.ref.namespace}/{f.ref.name}" for f, _ in claims)
        notes += [f"{facts.where}: skipped: server name {bounds.short(name)} is carried by {len(claims)} "
                  f"Deployments ({places}); none is managed until each has its own" for facts, _ in claims]
    return m.Collection(tuple(found), tuple(notes), capacity or m.Capacity())
