"""One control cycle as pure orchestration over injected clients: collect, optimize, actuate, report.

A cycle is skipped, never half-applied: when static data cannot be read, collection fails or is empty, the
optimizer fails or allocates nothing, or the actuator cannot be reached, nothing is written and the record
says why. When the actuator was reached but did not answer (deadline passed, connection lost mid-call, an
internal error), it may have written some Deployments before it stopped: the outcome is then "unconfirmed",
not "skipped", and the next cycle reads the cluster as it is. Servers the optimizer could not allocate are
left as they are (the actuator keeps replicas of servers absent from the solution). No I/O, clock or env
here: the caller injects them (the pure core: tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from services.controller.cyclerow import CycleRow
from services.controller.modelcheck import ModelCheck, ModelChecker, notices, row_fields
from services.core import model as m
from services.core.errors import InfernoError, RefusedError
from services.perfmodel.tuner import Tuner
from services.runtime.logs import get_logger

_log = get_logger("controller")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    """A service's answer: ``value`` decoded once (for the cycle's decisions and record) and ``wire``, the
    message as received, opaque here: the clients forward it unchanged to the next service (the collector's
    managed servers to the optimizer and the actuator, the optimizer's allocations to the actuator)."""

    value: T
    wire: Any = None


@dataclass(frozen=True, slots=True)
class Solved:
    """The optimizer's answer: the solution and its stats (solver, time, candidates; as JSON values)."""

    solution: m.Solution
    stats: Mapping[str, Any] = field(default_factory=dict)
    current: Mapping[str, m.Prediction] = field(default_factory=dict)
    """What the model predicts for each server as it runs now (the model-vs-reality check)."""


class CycleClients(Protocol):
    """The three services as the cycle sees them; each method raises on failure (any exception)."""

    def collect(self, static: m.SystemData, window: str = "") -> Reply[m.Collection]: ...

    def optimize(self, system: m.SystemData, collected: Reply[m.Collection]) -> Reply[Solved]: ...

    def actuate(self, solved: Reply[Solved], collected: Reply[m.Collection],
                dry_run: bool, notices: Sequence[m.Notice] = ()) -> list[m.ActuationResult]: ...


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """The outcome of one cycle, as answered by /invoke and appended to the cycle log.

    ``outcome`` is "applied", "partial" (applied, but the actuator failed on some Deployments: they are
    named in ``skip_reason`` and their rows), "advised" (a dry run: decided and reported, nothing written),
    "skipped" (nothing written) or "unconfirmed" (the actuator did not answer
    and may have written part of the plan); ``skip_reason`` says why for the last three; ``timings_ms`` has
    one entry per phase run (read_data, collect, optimize, actuate) and "total"; ``rows`` is the allocation
    table, a CycleRow per managed server sorted by name.
    """

    cycle_id: int
    started_at: str
    outcome: str
    skip_reason: str = ""
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    rows: tuple[CycleRow, ...] = ()
    warnings: tuple[str, ...] = ()
    total_cost_per_hour: float = 0.0
    solver_stats: Mapping[str, Any] = field(default_factory=dict)
    tuner: tuple[Mapping[str, Any], ...] = ()
    """The online tuner's state per (model, accelerator) after this cycle (TunerState.as_json)."""
    trigger: str = ""
    """Why the cycle ran: "period" (the controller's timer), "invoke" (GET /invoke) or "fast path: <server>:
    <why>" (services/controller/fastpath.py); "" when the caller did not say."""

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return {"cycle_id": self.cycle_id, "started_at": self.started_at, "outcome": self.outcome,
                "skip_reason": self.skip_reason, "timings_ms": dict(self.timings_ms),
                "rows": [r.as_json() for r in self.rows],
                "warnings": list(self.warnings), "total_cost_per_hour": self.total_cost_per_hour,
                "solver_stats": dict(self.solver_stats), "tuner": [dict(t) for t in self.tuner],
                "trigger": self.trigger}


class _Skip(Exception):
    """Ends a cycle early with a reason."""

    outcome = "skipped"


class _Unconfirmed(_Skip):
    """Ends a cycle whose actuation may have been partly carried out."""

    outcome = "unconfirmed"


OUTCOMES = ("applied", "partial", "advised", "skipped", "unconfirmed")
DECIDED = ("applied", "partial", "advised")
"""Outcomes of a cycle that computed an allocation (and, applied, wrote it)."""
WOULD_CHANGE = "would-change"
"""A row's action in a dry run where the actuator would have changed the Deployment."""


@dataclass
class _Timer:
    now_s: Callable[[], float]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def run(self, phase: str, what: str, action: Callable[[], Any], writes: bool = False) -> Any:
        start = self.now_s()
        try:
            return action()
        except _Skip:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of a phase skips the cycle, with its reason
            if not isinstance(err, InfernoError):
                _log.error("phase_failed", phase=phase, error=_describe(err), exc_info=True)
            if writes and not isinstance(err, RefusedError):
                raise _Unconfirmed(f"{what} did not answer ({_describe(err)}); it may have changed some "
                                   "Deployments, the next cycle reads them again") from err
            raise _Skip(f"{what} failed: {_describe(err)}") from err
        finally:
            self.timings_ms[phase] = round((self.now_s() - start) * 1000.0, 3)


def _describe(err: Exception) -> str:
    return str(err) or type(err).__name__


def build_system(static: m.SystemData, capacity_file: m.Capacity, collection: m.Collection) -> m.SystemData:
    """The optimizer's input: static data, the collected servers, and the collector's capacity when it has
    one (from Nodes), else the capacity file's."""
    capacity = collection.capacity if collection.capacity.counts else capacity_file
    return replace(static, servers=collection.servers, capacity=capacity)


def run_cycle(
    cycle_id: int,
    started_at: str,
    load_static: Callable[[], tuple[m.SystemData, m.Capacity]],
    clients: CycleClients,
    now_s: Callable[[], float],
    dry_run: bool = False,
    tuner: Tuner | None = None,
    checker: ModelChecker | None = None,
    window: str = "",
) -> CycleRecord:
    """Run one cycle and return its record; never raises for a failing phase (the cycle is skipped).

    ``load_static`` returns (static system data without servers, capacity from the file); ``now_s`` is a
    monotonic clock in seconds used only for phase timings. ``tuner``: the online perfParms tuner, fed the
    collected system; its adopted parameters (mode on) go to the optimizer (docs/model.md s12). ``checker``
    (kept by the caller across cycles) holds the model's predictions for the servers as they run against what
    they show (modelcheck.py). The static data is read once, here, and passed to the collector (it reads no
    data file then); ``window`` is the rate window it collects over ("" = its own; a fast-path cycle's is short).
    """
    timer = _Timer(now_s)
    start = now_s()
    collection = m.Collection()
    tuning: tuple[Mapping[str, Any], ...] = ()
    checks: dict[str, ModelCheck] = {}
    try:
        static, capacity = timer.run("read_data", "reading the data files", load_static)
        collected = timer.run("collect", "collector", lambda: clients.collect(static, window))
        collection = collected.value
        if not collection.managed:
            raise _Skip("collector found no managed servers")
        system = build_system(static, capacity, collection)
        if tuner is not None:
            system, tuning, note = _tune(tuner, system)
            collection = replace(collection, warnings=(*collection.warnings, note)) if note else collection
        solved = timer.run("optimize", "optimizer", lambda: clients.optimize(system, collected))
        solution, stats = solved.value.solution, solved.value.stats
        if checker is not None:
            checks = checker.check(collection.servers, solved.value.current,
                                   {s.name: _targets(system, s) for s in collection.servers})
        if not solution.allocations:
            raise _Skip("optimizer found no feasible allocation: " + "; ".join(
                f"{name}: {reason}" for name, reason in solution.unallocated.items()))
        events = notices(checks)
        actions = timer.run("actuate", "actuator", lambda: clients.actuate(solved, collected, dry_run, events),
                            writes=not dry_run)
    except _Skip as skip:
        timer.timings_ms["total"] = round((now_s() - start) * 1000.0, 3)
        return CycleRecord(cycle_id, started_at, skip.outcome, str(skip), timer.timings_ms,
                           rows=_rows(collection, None, [], None, checks),
                           warnings=(*collection.warnings, *_check_warnings(checks)), tuner=tuning)
    timer.timings_ms["total"] = round((now_s() - start) * 1000.0, 3)
    outcome, reason = ("advised", "") if dry_run else _applied(actions)
    return CycleRecord(cycle_id, started_at, outcome, reason, timer.timings_ms,
                       rows=_rows(collection, solution, actions, system, checks),
                       warnings=(*collection.warnings, *_check_warnings(checks)),
                       total_cost_per_hour=round(solution.total_cost_per_hour, 6), solver_stats=dict(stats),
                       tuner=tuning)


def _tune(tuner: Tuner, system: m.SystemData) -> tuple[m.SystemData, tuple[Mapping[str, Any], ...], str]:
    """(the system the optimizer gets, the tuner's states, a warning); a failing tuner never stops a cycle:
    the system goes on untuned and the warning says why."""
    try:
        states = tuple(state.as_json() for state in tuner.observe(system))
        return tuner.apply(system), states, ""
    except Exception as err:  # noqa: BLE001 - the tuner is advice; the cycle goes on without it
        return system, (), f"online tuner failed ({type(err).__name__}: {err}); perfParms of the data files used"


def _applied(actions: list[m.ActuationResult]) -> tuple[str, str]:
    """("applied", "") when no Deployment failed, else ("partial", which failed and why): the actuator wrote
    the others, so the cycle is not skipped, but it did not do all it decided."""
    failed = [a for a in actions if a.outcome is m.ActuationOutcome.FAILED]
    if not failed:
        return "applied", ""
    return "partial", f"{len(failed)} of {len(actions)} Deployment(s) failed: " + "; ".join(
        f"{a.ref.namespace}/{a.ref.name}: {a.reason}" for a in failed)


def _targets(system: m.SystemData | None, server: m.Server) -> m.ModelTarget | None:
    service_class = system.service_class(server.service_class) if system else None
    return service_class.target_for(server.model) if service_class else None


def _check_warnings(checks: Mapping[str, ModelCheck]) -> tuple[str, ...]:
    return tuple(c.warning for _, c in sorted(checks.items()) if c.warning)


def _rows(collection: m.Collection, solution: m.Solution | None, actions: list[m.ActuationResult],
          system: m.SystemData | None, checks: Mapping[str, ModelCheck] | None = None) -> tuple[CycleRow, ...]:
    by_server = {a.server_name: a for a in actions}
    return tuple(CycleRow(**_row(r, solution, by_server.get(r.name), _targets(system, r.server)),
                          **row_fields((checks or {}).get(r.name)), **_pool_classes(r.server, solution, system))
                 for r in sorted(collection.managed, key=lambda r: r.name))


def _pool_classes(server: m.Server, solution: m.Solution | None, system: m.SystemData | None) -> dict[str, Any]:
    """A pool's per-class column (CycleRow.pool_classes): each class's measured rate and mean latency bound,
    and its rate per replica and predicted latency when the optimizer allocated the pool; {} for a server
    that is no pool."""
    if not server.pool_classes:
        return {}
    desired = solution.allocations.get(server.name) if solution else None
    decided = desired is not None and len(desired.class_rpm) == len(server.pool_classes)
    classes = []
    for k, pc in enumerate(server.pool_classes):
        svc = system.service_class(pc.name) if system else None
        target = svc.target_for(server.model) if svc else None
        bound = target.mean_latency_s(server.load.avg_out_tokens) if target else None
        item: dict[str, Any] = {"class": pc.name, "priority": pc.priority,
                                "arrival_rate_rpm": pc.load.arrival_rate_rpm, "latency_bound_s": bound}
        if decided:
            item["rate_per_replica_rpm"] = desired.class_rpm[k]  # type: ignore[union-attr]
            latency = desired.class_latency_s[k] if k < len(desired.class_latency_s) else 0.0  # type: ignore[union-attr]
            item["predicted_latency_s"] = latency or None
        classes.append(item)
    return {"pool_classes": tuple(classes)}


def _row(managed: m.ManagedServer, solution: m.Solution | None, action: m.ActuationResult | None,
         target: m.ModelTarget | None) -> dict[str, Any]:
    """The CycleRow's columns of a managed server (the model check's are row_fields')."""
    server = managed.server
    observed = server.observed or m.ObservedMetrics()
    desired = solution.allocations.get(server.name) if solution else None
    row: dict[str, Any] = {
        "server": server.name, "service_class": server.service_class, "model": server.model,
        "namespace": managed.ref.namespace, "deployment": managed.ref.name,
        "arrival_rate_rpm": server.load.arrival_rate_rpm, "avg_in_tokens": server.load.avg_in_tokens,
        "avg_out_tokens": server.load.avg_out_tokens, "load_source": observed.source,
        "observed_itl_ms": observed.itl_ms, "observed_ttft_ms": observed.ttft_ms,
        "slo_itl_ms": target.slo_itl_ms if target else None, "slo_ttft_ms": target.slo_ttft_ms if target else None,
        "current_accelerator": server.current.accelerator, "current_replicas": managed.spec_replicas,
        "ready_replicas": managed.ready_replicas,
    }
    for metric in ("ttft", "itl"):  # percentiles: observed (vLLM's histograms) and the class's targets, when any
        for q in m.SLO_PERCENTILES:
            value = getattr(observed, f"{metric}_ms_p{q}")
            if value is not None:
                row[f"observed_{metric}_ms_p{q}"] = value
            if target is not None and getattr(target, m.percentile_field(metric, q)) > 0:
                row[f"slo_{metric}_ms_p{q}"] = getattr(target, m.percentile_field(metric, q))
    if observed.forecast_method:
        row.update(measured_rate_rpm=observed.measured_rate_rpm, forecast_rpm=observed.forecast_rpm,
                   forecast_lower_rpm=observed.forecast_lower_rpm, forecast_upper_rpm=observed.forecast_upper_rpm,
                   forecast_horizon_s=observed.forecast_horizon_s, forecast_method=observed.forecast_method,
                   forecast_rising=observed.forecast_rising)
    if desired is not None:
        row.update(accelerator=desired.accelerator, replicas=desired.num_replicas, max_batch=desired.max_batch,
                   cost_per_hour=desired.cost_per_hour, predicted_itl_ms=desired.itl_ms,
                   predicted_ttft_ms=desired.ttft_ms, saturated=desired.saturated,
                   unserved_rate_rpm=desired.unserved_rate_rpm)
        for metric in ("ttft", "itl"):  # predicted percentiles, when the optimizer gave them
            for q in m.SLO_PERCENTILES:
                if getattr(desired, f"{metric}_ms_p{q}") > 0:
                    row[f"predicted_{metric}_ms_p{q}"] = getattr(desired, f"{metric}_ms_p{q}")
    elif solution is not None:
        row["unallocated_reason"] = solution.unallocated.get(server.name, "not in the solution")
    if action is not None:
        done = str(action.outcome)
        if action.dry_run and action.outcome is m.ActuationOutcome.CHANGED:
            done = WOULD_CHANGE
        row.update(action=done, action_reason=action.reason, replicas_from=action.replicas_from,
                   replicas_to=action.replicas_to, dry_run=action.dry_run)
    return row
