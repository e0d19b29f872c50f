"""One collection: static data, managed Deployments, their metrics and capacity -> a model Collection.

The sources are injected (KubeSource, a metrics source, optionally a node capacity source), so tests can
pass fakes. Each call builds a new snapshot; nothing is carried between calls, except, with forecasting on and
a metrics source that keeps no history (direct scrape), the arrival rates measured at earlier calls.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from services.collector import aggregate, capacity, forecast
from services.collector.aggregate import DeploymentFacts, PodRatesByDeployment
from services.core import datafiles, routing
from services.core import model as m
from services.core.bounds import MAX_REPLICAS, namespace_problem
from services.core.errors import DataFileError, InvalidInputError


class DeploymentSource(Protocol):
    """Lists managed Deployments (raises UnavailableError when it cannot)."""

    def deployments(self, namespaces: Iterable[str] = ()) -> list[DeploymentFacts]: ...


class MetricsSource(Protocol):
    """Reads per-pod rates for Deployments; never raises (failures become warnings)."""

    source: m.LoadSource

    def read(self, deployments: Sequence[DeploymentFacts]) -> tuple[PodRatesByDeployment, list[str]]: ...


@runtime_checkable
class ClassRateSource(Protocol):
    """A metrics source that also reads pool routers' per-class rates (RPM by Deployment and class)."""

    def class_rates(self, deployments: Sequence[DeploymentFacts],
                    window: str = "") -> tuple[aggregate.ClassRates, list[str]]: ...


class CapacitySource(Protocol):
    """Counts free accelerator cards per type; never raises (failures become warnings)."""

    def capacity(self, static: m.SystemData | None,
                 managed_pods: set[tuple[str, str]]) -> tuple[m.Capacity, list[str]]: ...


def read_static(data_path: str) -> tuple[m.SystemData | None, list[str]]:
    """Static data in ``data_path`` without servers -> (SystemData or None, warnings); None (with a warning)
    when it cannot be read, so that labels are then not checked against it."""
    try:
        loaded = datafiles.load_system_dir(data_path, strict=False, require_servers=False)
    except DataFileError as err:
        return None, [f"static data not read, labels not checked against it: {err}"]
    return loaded.system, list(loaded.warnings)


def choose_namespaces(requested: Sequence[str], watched: Sequence[str]) -> tuple[list[str], list[str]]:
    """The namespaces to list -> (namespaces, warnings): the request's, limited to the watched ones when
    WATCH_NAMESPACE is set; empty means all namespaces. Raises InvalidInputError for a requested name that is
    not a namespace name (it would reach the API's URL)."""
    for i, name in enumerate(requested):
        problem = namespace_problem(name) if name else ""
        if problem:
            raise InvalidInputError(f"namespaces[{i}]: {problem}")
    asked = sorted({n for n in requested if n})
    if not watched:
        return asked, []
    if not asked:
        return sorted(set(watched)), []
    outside = [n for n in asked if n not in watched]
    warnings = [f"namespace {n} is not watched (WATCH_NAMESPACE); ignored" for n in outside]
    kept = [n for n in asked if n in watched]
    return kept, warnings


@dataclass(frozen=True, slots=True)
class ForecastSetup:
    """INFERNO_FORECAST=on: history looked back over (s), its step (s; the rate window), the start-up delay
    when the pods' own history gives none (s), and the control period (s) (docs/contract.md s9)."""

    history_s: float = 600.0
    step_s: float = 60.0
    startup_default_s: float = 120.0
    period_s: float = 60.0


class Collector:
    """Collects managed servers: Deployments from ``kube``, load from ``metrics``, capacity from the data
    file in ``data_path`` or from ``nodes`` when given; ``max_replicas`` is the default replica cap of a
    Deployment (INFERNO_MAX_REPLICAS; its maxreplicas label overrides it); with ``forecast``, each server is
    sized for its forecast load (services/collector/forecast.py), from the metrics source's rate history when it
    keeps one (Prometheus range queries), else from the rates this collector measured at its earlier
    collections."""

    def __init__(self, kube: DeploymentSource, metrics: MetricsSource, data_path: str, *,
                 watch_namespaces: Sequence[str] = (), nodes: CapacitySource | None = None,
                 max_replicas: int = MAX_REPLICAS, forecast: ForecastSetup | None = None,
                 now_s: Callable[[], float] = time.time) -> None:
        self._max_replicas = max_replicas
        self._kube = kube
        self._metrics = metrics
        self._data_path = data_path
        self._watch = tuple(watch_namespaces)
        self._nodes = nodes
        self._forecast = forecast
        self._now_s = now_s
        self._memory: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def collect(self, namespaces: Sequence[str] = (), *, window: str = "", forecast: bool = True,
                static: m.SystemData | None = None) -> m.Collection:
        """One collection of the managed servers in ``namespaces`` (empty = the watched ones, or all); ``window``
        overrides the metrics source's rate window ("" = its own; the fast path reads a short one), and
        ``forecast`` False measures only, even with forecasting on. ``static``: the static data (servers aside)
        the caller read for this cycle (the controller, its one reader), used for the label checks, current costs
        and the capacity fallback; None (a collection on its own): the data files in ``data_path`` are read.

        Raises UnavailableError when the Kubernetes API cannot list Deployments; metrics and capacity
        failures are warnings in the answer.
        """
        chosen, warnings = choose_namespaces(namespaces, self._watch)
        if self._watch and namespaces and not chosen:
            return m.Collection(warnings=tuple(warnings))
        file_capacity = static.capacity if static is not None else None  # None: read it from data_path if needed
        static, static_warnings = (static, []) if static is not None else read_static(self._data_path)
        deployments = self._kube.deployments(chosen)
        rates, metric_warnings = (self._metrics.read(deployments, window=window) if window
                                  else self._metrics.read(deployments))
        cards, capacity_warnings = self._capacity(static, deployments, file_capacity)
        class_rates, class_warnings = self._class_rates(deployments, window)
        notes = [*warnings, *static_warnings, *metric_warnings, *capacity_warnings, *class_warnings]
        collection = aggregate.collect(deployments, rates, self._metrics.source, static, notes, cards,
                                       self._max_replicas, class_rates)
        return self._forecasted(collection, deployments) if self._forecast and forecast else collection

    def _class_rates(self, deployments: Sequence[DeploymentFacts],
                     window: str) -> tuple[aggregate.ClassRates, list[str]]:
        """The pool routers' per-class rates of the pool Deployments, from a metrics source that has them (a
        ClassRateSource: Prometheus); none otherwise (the pools fall back to their labels)."""
        pools = [d for d in deployments if routing.POOL_LABEL in d.labels]
        if not pools or not isinstance(self._metrics, ClassRateSource):
            return {}, []
        return self._metrics.class_rates(pools, window) if window else self._metrics.class_rates(pools)

    def _forecasted(self, collection: m.Collection, deployments: Sequence[DeploymentFacts]) -> m.Collection:
        """Every managed server sized for its forecast load (forecast.forecast_server)."""
        setup, now = self._forecast, self._now_s()
        assert setup is not None
        history, warnings = self._history(deployments, setup, now)
        facts = {(d.ref.namespace, d.ref.name): d for d in deployments}
        managed = []
        for record in collection.managed:
            key = (record.ref.namespace, record.ref.name)
            pods = facts[key].pods if key in facts else ()
            horizon = forecast.startup_delay_s([p.startup_s for p in pods], setup.startup_default_s) + setup.period_s
            managed.append(forecast.forecast_server(record, history.get(key, []), setup.step_s, horizon, horizon))
            self._remember(key, now, managed[-1], setup)
        return replace(collection, managed=tuple(managed), warnings=(*collection.warnings, *warnings))

    def _history(self, deployments: Sequence[DeploymentFacts], setup: ForecastSetup,
                 now: float) -> tuple[dict[tuple[str, str], list[float]], list[str]]:
        reader = getattr(self._metrics, "arrival_history", None)
        if reader is not None:
            return reader(deployments, setup.history_s, setup.step_s, now)
        return {key: [rpm for t, rpm in kept if now - t <= setup.history_s]
                for key, kept in self._memory.items()}, []

    def _remember(self, key: tuple[str, str], now: float, record: m.ManagedServer, setup: ForecastSetup) -> None:
        """A metrics source without history (direct scrape): keep one measured rate per step per Deployment."""
        observed = record.server.observed
        if getattr(self._metrics, "arrival_history", None) is not None or observed is None or \
                observed.measured_rate_rpm is None:
            return
        kept = self._memory.setdefault(key, deque(maxlen=max(int(setup.history_s // setup.step_s), 1)))
        if not kept or now - kept[-1][0] >= 0.9 * setup.step_s:
            kept.append((now, observed.measured_rate_rpm))

    def _capacity(self, static: m.SystemData | None, deployments: Sequence[DeploymentFacts],
                  file_capacity: m.Capacity | None) -> tuple[m.Capacity, list[str]]:
        """Free cards from the Nodes when a node source is set and finds GPUs, else the capacity data file's:
        ``file_capacity`` (the caller's static data), or, when None, read from ``data_path``."""
        if self._nodes is not None:
            managed = {(d.ref.namespace, p.name) for d in deployments for p in d.pods}
            cards, warnings = self._nodes.capacity(static, managed)
            if cards.counts:
                return cards, warnings
            file_cards, file_warnings = self._from_file(file_capacity)
            return file_cards, [*warnings, "no GPUs found on Nodes; capacity from the data file", *file_warnings]
        return self._from_file(file_capacity)

    def _from_file(self, file_capacity: m.Capacity | None) -> tuple[m.Capacity, list[str]]:
        return (file_capacity, []) if file_capacity is not None else capacity.capacity_from_file(self._data_path)
