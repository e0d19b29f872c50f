"""The data model shared by all services: frozen, slotted dataclasses with units in field names.

Mirrors Inferno's data files (docs/model.md s1): accelerators, capacity, model
performance data, service classes and their targets, servers with their load and allocations,
optimizer settings, and solutions. Rates in this model are requests per minute (``_rpm``), times are
milliseconds (``_ms``) and costs are cost units per hour (``_per_hour``), exactly as in the data files.

This module is pure: it imports nothing outside the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_CLASS = "Free"
"""Service class of a server that names none (Inferno's convention)."""

LOWEST_PRIORITY = 100
"""Priorities run 1 (most important) .. 100; out-of-range values become this."""


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """Accelerator power draw in watts, piecewise linear in utilization: idle -> mid point -> full."""

    idle_w: float = 0.0
    full_w: float = 0.0
    mid_power_w: float = 0.0
    mid_util: float = 0.0


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One accelerator kind as allocated to a replica (e.g. ``2xAIU2`` = two ``AIU2`` cards).

    ``name`` keys model data; ``type`` is the card type counted against capacity; ``multiplicity`` is the
    number of ``type`` cards in one accelerator; ``cost_per_hour`` is for one accelerator of this name.
    """

    name: str
    type: str
    multiplicity: int = 1
    mem_size_gb: float = 0.0
    mem_bw_gbps: float = 0.0
    power: PowerProfile = field(default_factory=PowerProfile)
    cost_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class Capacity:
    """Cards available per accelerator type; a type that is absent has 0."""

    counts: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))

    def count(self, accelerator_type: str) -> int:
        """Cards of ``accelerator_type`` available (0 when not listed)."""
        return self.counts.get(accelerator_type, 0)


@dataclass(frozen=True, slots=True)
class PerfParms:
    """Iteration time = alpha + beta x (tokens computed) + gamma x (tokens read from the KV cache), all ms.

    ``ttft_overhead_ms``: time a client sees on top of the engine's TTFT (HTTP, tokenization, streaming),
    added by model v1 (docs/model.md s3.1); 0 for a bare engine, fitted from client-side benchmarks.
    """

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    ttft_overhead_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelPerf:
    """Performance of one model on one accelerator name.

    ``acc_count`` accelerators serve one replica (0 or absent in files means 1; negative is an error);
    ``max_batch_size`` requests were measured at ``at_tokens`` tokens per request.
    """

    model: str
    accelerator: str
    acc_count: int
    max_batch_size: int
    at_tokens: int
    perf: PerfParms


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """SLOs of one model in a service class; 0 means no target. ``slo_itl_ms`` and ``slo_ttft_ms`` are means
    in ms (Inferno's `slo-itl`, `slo-ttft`); ``slo_itl_p90_ms`` etc. are percentiles in ms (`slo-itl-p90`,
    docs/model.md s1): the 90th percentile of the token gaps, or of the requests' TTFT, at most this."""

    model: str
    slo_itl_ms: float = 0.0
    slo_ttft_ms: float = 0.0
    slo_tps: float = 0.0
    slo_itl_p50_ms: float = 0.0
    slo_itl_p90_ms: float = 0.0
    slo_itl_p95_ms: float = 0.0
    slo_itl_p99_ms: float = 0.0
    slo_ttft_p50_ms: float = 0.0
    slo_ttft_p90_ms: float = 0.0
    slo_ttft_p95_ms: float = 0.0
    slo_ttft_p99_ms: float = 0.0

    def mean_latency_s(self, out_tokens: float) -> float | None:
        """The mean end-to-end latency the mean targets allow a request of ``out_tokens`` output tokens (at
        least 1), s: (slo_ttft_ms + slo_itl_ms x (out_tokens - 1)) / 1000 (a pool class's bound, docs/model.md
        s13); None when neither mean target is set."""
        if self.slo_ttft_ms <= 0 and self.slo_itl_ms <= 0:
            return None
        return (self.slo_ttft_ms + self.slo_itl_ms * (max(out_tokens, 1.0) - 1.0)) / 1000.0

    def percentile_targets(self) -> tuple[tuple[str, int, float], ...]:
        """The percentile targets that are set: (``"itl"`` or ``"ttft"``, percentile, ms), in field order."""
        return tuple((metric, q, value) for metric, q, value in
                     ((metric, q, getattr(self, percentile_field(metric, q)))
                      for metric in ("itl", "ttft") for q in SLO_PERCENTILES) if value > 0)


SLO_PERCENTILES = (50, 90, 95, 99)
"""The percentiles a service class may target (docs/model.md s1)."""


def percentile_field(metric: str, percentile: int) -> str:
    """The ModelTarget field of a percentile target: ``percentile_field("ttft", 90)`` is ``slo_ttft_p90_ms``."""
    return f"slo_{metric}_p{percentile}_ms"


def percentile_key(metric: str, percentile: int) -> str:
    """The serviceclass-data.json key of a percentile target: ``slo-ttft-p90``."""
    return f"slo-{metric}-p{percentile}"


@dataclass(frozen=True, slots=True)
class ServiceClass:
    """A service class: ``priority`` 1..100 (smaller is more important) and per-model targets."""

    name: str
    priority: int = LOWEST_PRIORITY
    targets: tuple[ModelTarget, ...] = ()

    def target_for(self, model: str) -> ModelTarget | None:
        """The class's target for ``model``, or None when the class sets none."""
        for target in self.targets:
            if target.model == model:
                return target
        return None


@dataclass(frozen=True, slots=True)
class Load:
    """Offered load of a server: arrival rate in requests per minute and mean tokens per request.

    ``out_tokens_c2``: squared coefficient of variation of the output length (variance / mean^2; 0 for fixed
    lengths, 1 for exponential ones), None when not measured (the optimizer setting ``output_c2`` applies).
    """

    arrival_rate_rpm: float = 0.0
    avg_in_tokens: float = 0.0
    avg_out_tokens: float = 0.0
    out_tokens_c2: float | None = None


@dataclass(frozen=True, slots=True)
class Allocation:
    """An allocation of a server: accelerator name, replicas, batch size, cost and predicted latency.

    ``accelerator == ""`` means no allocation. ``saturated`` marks a best-effort allocation that serves
    less than the load; ``unserved_rate_rpm`` is the rate it cannot serve. ``max_queue`` is the queue size
    per replica the model assumed (0 when unknown).
    """

    accelerator: str = ""
    num_replicas: int = 0
    max_batch: int = 0
    cost_per_hour: float = 0.0
    itl_ms: float = 0.0
    ttft_ms: float = 0.0
    load: Load = field(default_factory=Load)
    max_queue: int = 0
    saturated: bool = False
    unserved_rate_rpm: float = 0.0
    ttft_ms_p50: float = 0.0
    ttft_ms_p90: float = 0.0
    ttft_ms_p95: float = 0.0
    ttft_ms_p99: float = 0.0
    itl_ms_p50: float = 0.0
    itl_ms_p90: float = 0.0
    itl_ms_p95: float = 0.0
    itl_ms_p99: float = 0.0
    """Predicted percentiles per replica at its share of the load, ms (docs/model.md s3.2); 0 = not predicted."""
    class_rpm: tuple[float, ...] = ()
    """A pool's allocation (Server.pool_classes set): each class's rate per replica, RPM, in the pool's class
    order (the router's weights); empty for any other server."""
    class_latency_s: tuple[float, ...] = ()
    """A pool's allocation: each class's predicted mean end-to-end latency, s (docs/model.md s13)."""

    @property
    def is_empty(self) -> bool:
        """True when no accelerator is allocated."""
        return self.accelerator == ""


def forecast_sizing_rpm(current_rpm: float, upper_rpm: float | None, rising: bool) -> float:
    """The arrival rate (req/min) a server is sized for under a forecast (docs/contract.md s9): the upper bound
    of the prediction interval, never below the current rate, when the forecast rises; else the current
    rate. One rule for the collector (which sizes for it) and the actuator (which reads the point forecast
    against it)."""
    return max(upper_rpm or 0.0, current_rpm) if rising else current_rpm


@dataclass(frozen=True, slots=True)
class ObservedMetrics:
    """What the collector measured for a server over its window; None where no figure was available.

    Latencies are means in ms; ``kv_cache_usage`` is a fraction 0..1; ``source`` names where the load
    came from (see LoadSource).
    """

    itl_ms: float | None = None
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage: float | None = None
    ready_replicas: int | None = None
    source: str = ""
    measured_rate_rpm: float | None = None
    """The arrival rate measured now, before any forecast (the load's rate is what the server is sized for)."""
    forecast_rpm: float | None = None
    """Forecast arrival rate ``forecast_horizon_s`` ahead (INFERNO_FORECAST=on; docs/contract.md s9)."""
    forecast_lower_rpm: float | None = None
    forecast_upper_rpm: float | None = None
    """The forecast's prediction interval (the upper bound raised at a level shift, docs/contract.md s9)."""
    forecast_horizon_s: float | None = None
    """Pod start-up delay plus one control period: when replicas requested now have served one period."""
    forecast_method: str = ""
    """How the forecast was made (services/collector/forecast.py METHOD_*); "" = no forecast."""
    forecast_rising: bool = False
    """The forecast found a significant rise (sized for its upper bound; no scale-down meanwhile)."""
    in_system_growth_rpm: float | None = None
    """Growth of the running + waiting requests per minute (arrivals = completions + growth)."""
    ttft_ms_p50: float | None = None
    ttft_ms_p90: float | None = None
    ttft_ms_p95: float | None = None
    ttft_ms_p99: float | None = None
    itl_ms_p50: float | None = None
    itl_ms_p90: float | None = None
    itl_ms_p95: float | None = None
    itl_ms_p99: float | None = None
    """Observed percentiles from vLLM's TTFT and inter-token histograms over the window, ms (Prometheus's
    histogram_quantile interpolation; docs/contract.md s4)."""


class LoadSource(enum.StrEnum):
    """Where a server's load figures came from."""

    PROMETHEUS = "prometheus"
    DIRECT_SCRAPE = "direct_scrape"
    LABELS = "labels"
    DATA_FILE = "data_file"


@dataclass(frozen=True, slots=True)
class PoolClass:
    """One service class of a pool server: its name (a service class of the data), the request ``priority``
    its requests carry (its position, most important first) and its offered ``load``."""

    name: str
    priority: int = 0
    load: Load = field(default_factory=Load)


@dataclass(frozen=True, slots=True)
class Server:
    """A (model, service class) inference server, or a pool serving several classes.

    ``max_batch_size`` > 0 overrides the computed batch size; ``current`` holds the current allocation and
    the load (``current.load``, a pool's total); ``desired`` is the optimizer's output, when known;
    ``pool_classes`` (non-empty for a pool, docs/contract.md s10) its classes in priority order with their loads.
    """

    name: str
    service_class: str = DEFAULT_CLASS
    model: str = ""
    keep_accelerator: bool = False
    min_replicas: int = 0
    max_batch_size: int = 0
    max_queue_size: int = 0
    current: Allocation = field(default_factory=Allocation)
    desired: Allocation | None = None
    observed: ObservedMetrics | None = None
    pool_classes: tuple[PoolClass, ...] = ()

    @property
    def load(self) -> Load:
        """The server's offered load (from its current allocation record)."""
        return self.current.load


class SaturationPolicy(enum.StrEnum):
    """What the limited-capacity solver does with servers it could not fully allocate (docs/model.md s6)."""

    NONE = "None"
    PRIORITY_EXHAUSTIVE = "PriorityExhaustive"
    PRIORITY_ROUND_ROBIN = "PriorityRoundRobin"
    ROUND_ROBIN = "RoundRobin"


class ServiceModel(enum.StrEnum):
    """Which service-time model sizes replicas (docs/model.md s3).

    ``auto`` (the default) is "v1" (continuous batching, docs/model.md s3.1) except in Inferno-compatible
    mode (the greedy solver), where it is "v0.3" so that Inferno's published solutions come out.
    """

    AUTO = "auto"
    V03 = "v0.3"
    V07 = "v0.7"
    V1 = "v1"


class SolverKind(enum.StrEnum):
    """Which limited-capacity solver allocates (docs/model.md s9): ``exact`` (CP-SAT over the candidates, the
    default) or ``greedy`` (Inferno's algorithm and model choices: the compatibility mode)."""

    EXACT = "exact"
    GREEDY = "greedy"


@dataclass(frozen=True, slots=True)
class Deviation:
    """Largest relative increase of a model's perfParms on an accelerator (docs/model.md s10): at worst,
    alpha x (1 + alpha), beta x (1 + beta), gamma x (1 + gamma). 0.2 = up to 20% slower than fitted."""

    alpha: float = 0.0
    beta: float = 0.0
    gamma: float = 0.0

    def worst(self, perf: PerfParms) -> PerfParms:
        """``perf`` at its worst case."""
        return PerfParms(perf.alpha_ms * (1 + self.alpha), perf.beta_ms * (1 + self.beta),
                         perf.gamma_ms * (1 + self.gamma))


@dataclass(frozen=True, slots=True)
class Robustness:
    """Robust sizing (docs/model.md s10), the ``robustness`` section of optimizer-data.json.

    ``gamma`` is the uncertainty budget Gamma (>= 0): how many server groups may run at their worst-case
    parameters at once (a fraction: that share of one group's deviation). ``default`` is the deviation of every
    (model, accelerator) not listed in ``deviations`` ((model, accelerator, deviation) triples).
    """

    gamma: float = 0.0
    default: Deviation = field(default_factory=Deviation)
    deviations: tuple[tuple[str, str, Deviation], ...] = ()

    def deviation(self, model: str, accelerator: str) -> Deviation:
        """The deviation of ``model`` on ``accelerator``: its own entry, else the default."""
        return next((d for m, a, d in self.deviations if m == model and a == accelerator), self.default)

    @property
    def active(self) -> bool:
        """Whether robust sizing changes anything (Gamma > 0)."""
        return self.gamma > 0


@dataclass(frozen=True, slots=True)
class OptimizerSettings:
    """Optimizer settings from optimizer-data.json, plus our extensions (from ``service_model`` on).

    ``solver`` None: not chosen by the data (then ``milp_solver`` true selects exact, else the service's
    setting decides); ``time_limit_s`` 0: not set by the data (the service's setting applies).
    """

    unlimited: bool = False
    heterogeneous: bool = False
    milp_solver: bool = False
    use_cplex: bool = False
    delayed_best_effort: bool = False
    saturation_policy: SaturationPolicy = SaturationPolicy.NONE
    service_model: ServiceModel = ServiceModel.AUTO
    blocking_bound: float = 0.0
    """Largest loss probability p(C) allowed at the sized point; 0 disables the check (Inferno's way)."""
    time_limit_s: float = 0.0
    output_c2: float = 1.0
    """Squared coefficient of variation of output lengths where a server has no measured one (model v1)."""
    token_budget: int = 8192
    """Tokens one engine iteration may compute (vLLM's max-num-batched-tokens), model v1's chunked prefill."""
    solver: SolverKind | None = None
    robustness: Robustness | None = None
    """Robust sizing (docs/model.md s10); None (the default): off, every candidate sized at nominal perfParms."""


@dataclass(frozen=True, slots=True)
class SystemData:
    """Everything the optimizer needs: the six Inferno data files as one value."""

    accelerators: tuple[Accelerator, ...] = ()
    models: tuple[ModelPerf, ...] = ()
    service_classes: tuple[ServiceClass, ...] = ()
    servers: tuple[Server, ...] = ()
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    capacity: Capacity = field(default_factory=Capacity)

    def accelerator(self, name: str) -> Accelerator | None:
        """The accelerator called ``name``, or None."""
        return next((a for a in self.accelerators if a.name == name), None)

    def service_class(self, name: str) -> ServiceClass | None:
        """The service class called ``name``, or None."""
        return next((c for c in self.service_classes if c.name == name), None)

    def perf(self, model: str, accelerator: str) -> ModelPerf | None:
        """Performance data of ``model`` on ``accelerator``, or None."""
        return next((m for m in self.models if m.model == model and m.accelerator == accelerator), None)


@dataclass(frozen=True, slots=True)
class Solution:
    """The optimizer's answer: an allocation per server name, and servers it could not allocate.

    ``unallocated`` maps a server name to the reason it got nothing.
    """

    allocations: Mapping[str, Allocation] = field(default_factory=dict)
    unallocated: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allocations", MappingProxyType(dict(sorted(self.allocations.items()))))
        object.__setattr__(self, "unallocated", MappingProxyType(dict(sorted(self.unallocated.items()))))

    @property
    def total_cost_per_hour(self) -> float:
        """Sum of the allocations' costs."""
        return sum(a.cost_per_hour for a in self.allocations.values())


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model predicts for a server as it runs now: its current accelerator and replicas, the batch
    size the model sizes it with, at the measured load; mean ITL and TTFT in ms; ``saturated`` when the load
    is beyond what the model says these replicas serve."""

    server_name: str
    accelerator: str
    num_replicas: int
    max_batch: int
    itl_ms: float
    ttft_ms: float
    saturated: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """An Event to write on a server's Deployment: type Normal or Warning, a CamelCase reason, a message."""

    server_name: str
    type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class KubeRef:
    """Where a managed server lives in Kubernetes: its Deployment."""

    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True)
class ManagedServer:
    """One managed server as it crosses the pod (collector -> controller -> actuator): the server record, the
    Deployment that runs it, that Deployment's spec and ready replicas, and ``load_measured``, decided once by
    the collector: False when the load came from the load labels and no live figure was read (metrics missing),
    so the actuator holds scale-downs on it (docs/contract.md s4)."""

    server: Server
    ref: KubeRef
    spec_replicas: int = 0
    ready_replicas: int = 0
    load_measured: bool = True

    @property
    def name(self) -> str:
        """The server's name."""
        return self.server.name


@dataclass(frozen=True, slots=True)
class Collection:
    """What the collector found: managed servers sorted by name, the warnings met on the way, and the capacity
    it knows (cards per type; empty = unknown, use the capacity data file)."""

    managed: tuple[ManagedServer, ...] = ()
    warnings: tuple[str, ...] = ()
    capacity: Capacity = field(default_factory=Capacity)

    @property
    def servers(self) -> tuple[Server, ...]:
        """The server records, in the order of ``managed``."""
        return tuple(entry.server for entry in self.managed)

    @property
    def sources(self) -> Mapping[str, int]:
        """Servers per load source (prometheus, direct_scrape, labels), for the summary log line."""
        counts: dict[str, int] = {}
        for server in self.servers:
            key = server.observed.source if server.observed else ""
            counts[key] = counts.get(key, 0) + 1
        return MappingProxyType(counts)


class ActuationOutcome(enum.StrEnum):
    """What the actuator did to one Deployment."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeploymentOutcome:
    """What happens to one Deployment of a server: outcome, why, and spec replicas before -> after. The common
    part of the actuator's plan for a Deployment (services.actuator.plan.Change) and its report
    (ActuationResult)."""

    server_name: str
    ref: KubeRef
    outcome: ActuationOutcome
    reason: str = ""
    replicas_from: int = 0
    replicas_to: int = 0


@dataclass(frozen=True, slots=True)
class ActuationResult(DeploymentOutcome):
    """The actuator's report for one Deployment of a server: the DeploymentOutcome (``replicas_to`` is what was,
    or in a dry run would have been, written), the accelerator allocated, and whether it was a dry run."""

    accelerator: str = ""
    dry_run: bool = False
