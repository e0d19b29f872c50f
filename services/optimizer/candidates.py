"""Candidate allocations per server, with their sizing, metrics and transition-penalty value (docs/model.md s6).

build_candidates() validates the system, sizes every (server, accelerator) pair in one vectorised pass and
returns each server's candidates sorted by (value, cost, accelerator name), plus the servers that have
none and why. Pure: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from services.core.bounds import MAX_REPLICAS
from services.core.model import LOWEST_PRIORITY, Accelerator, ModelPerf, Server, SolverKind, SystemData
from services.core.validate import validate_system
from services.optimizer.batchsearch import BatchProblem, fewest_replica_batches, with_batch
from services.optimizer.sizing import Targets, batch_size, size_replicas
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_ms
from services.perfmodel.servicetime import ReplicaModel, default_queue, replica_model_for

MS_PER_MINUTE = 60_000.0
ACCELERATOR_PENALTY = 0.1
"""Transition penalty factor when the accelerator changes (docs/model.md s6)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to serve a server: ``num_replicas`` replicas of ``accelerator`` with batch ``max_batch``.

    ``units_per_replica`` cards of ``accelerator_type`` per replica; ``cost_per_replica`` per hour;
    ``value`` = cost plus the transition penalty; ``row`` indexes the CandidateSet's chains (-1 = zero load).
    """

    server: str
    accelerator: str
    accelerator_type: str
    units_per_replica: int
    cost_per_replica: float
    num_replicas: int
    max_batch: int
    max_queue: int
    rate_per_ms: float
    value: float
    itl_ms: float
    ttft_ms: float
    row: int

    @property
    def cost_per_hour(self) -> float:
        """Cost of the full allocation per hour."""
        return self.cost_per_replica * self.num_replicas

    @property
    def units(self) -> int:
        """Cards of ``accelerator_type`` the full allocation takes."""
        return self.units_per_replica * self.num_replicas

    @property
    def sort_key(self) -> tuple[float, float, str]:
        """Deterministic order: value, then cost, then accelerator name (docs/model.md s8)."""
        return (self.value, self.cost_per_hour, self.accelerator)


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """Sorted candidates per server name, priorities, reasons for servers without any, and the chains."""

    options: Mapping[str, tuple[Candidate, ...]]
    priorities: Mapping[str, int]
    unallocated: Mapping[str, str]
    chains: ChainBatch | None = None
    servers: Mapping[str, Server] = field(default_factory=dict)
    dropped: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Server -> accelerator -> why that accelerator is no candidate (perfParms all zero, SLOs unreachable)."""

    @property
    def count(self) -> int:
        """Number of candidates over all servers."""
        return sum(len(c) for c in self.options.values())


def transition_value(current_accelerator: str, current_replicas: int, current_cost: float,
                     accelerator: str, replicas: int, cost: float) -> float:
    """Cost plus the penalty of moving from the current allocation (docs/model.md s6): 0 if unchanged; cost
    change if only the replicas change; 0.1 (a + b) + (b - a) if the accelerator changes (also from none)."""
    if accelerator == current_accelerator:
        return 0.0 if replicas == current_replicas else cost - current_cost
    return ACCELERATOR_PENALTY * (current_cost + cost) + (cost - current_cost)


@dataclass(frozen=True, slots=True)
class _Lookup:
    """``system``'s accelerators and model data by name, built once per solve (SystemData's lookups scan).

    Same answers as SystemData.accelerator / perf, whose keys validate_system has checked are unique.
    """

    accelerators: dict[str, Accelerator]
    perf: dict[tuple[str, str], ModelPerf]
    names: dict[str, list[str]]
    """Model -> sorted names of the accelerators with data for it."""

    @classmethod
    def of(cls, system: SystemData) -> _Lookup:
        names: dict[str, list[str]] = {}
        for perf in system.models:
            names.setdefault(perf.model, []).append(perf.accelerator)
        return cls({a.name: a for a in system.accelerators},
                   {(p.model, p.accelerator): p for p in system.models},
                   {model: sorted(accs) for model, accs in names.items()})


@dataclass(slots=True)
class _Pending:
    server: Server
    perf: ModelPerf
    model: ReplicaModel
    targets: Targets
    rate_per_ms: float
    row: int = -1


def _accelerator_names(lookup: _Lookup, server: Server) -> list[str]:
    names = lookup.names.get(server.model, [])
    if server.keep_accelerator and server.current.accelerator:
        names = [n for n in names if n == server.current.accelerator]
    return names


def _server_problem(system: SystemData, lookup: _Lookup, server: Server) -> str:
    """Why ``server`` can have no candidate at all, or "" when it can."""
    svc = system.service_class(server.service_class)
    if svc is None:
        return f"unknown service class {server.service_class!r}"
    if svc.target_for(server.model) is None:
        return f"service class {svc.name!r} has no target for model {server.model!r}"
    if not _accelerator_names(lookup, server):
        keep = " (keepAccelerator)" if server.keep_accelerator and server.current.accelerator else ""
        return f"no performance data for model {server.model!r}{keep}"
    return ""


def _candidate(lookup: _Lookup, server: Server, perf: ModelPerf, replicas: int, batch: int, queue: int,
               rate_per_ms: float, row: int, itl_ms: float = 0.0, ttft_ms: float = 0.0) -> Candidate:
    acc = lookup.accelerators[perf.accelerator]  # validate_system guarantees it
    count = max(perf.acc_count, 1)
    per_replica = acc.cost_per_hour * count
    cur = server.current
    value = transition_value(cur.accelerator, cur.num_replicas, cur.cost_per_hour, acc.name, replicas,
                             per_replica * replicas)
    return Candidate(server.name, acc.name, acc.type, count * max(acc.multiplicity, 1), per_replica, replicas,
                     batch, queue, rate_per_ms, value, itl_ms, ttft_ms, row)


def _empty(server: Server) -> Candidate:
    """The candidate of an idle server that may have no replica: no accelerator, nothing to change."""
    cur = server.current
    value = 0.0 if not cur.accelerator else transition_value(cur.accelerator, cur.num_replicas, cur.cost_per_hour,
                                                             "", 0, 0.0)
    return Candidate(server.name, "", "", 0, 0.0, 0, 0, 0, 0.0, value, 0.0, 0.0, -1)


def _collect(system: SystemData, lookup: _Lookup, dropped: dict[str, dict[str, str]]
             ) -> tuple[dict[str, list[Candidate]], list[_Pending], dict[str, str]]:
    """Zero-load candidates directly, loaded (server, accelerator) pairs as pending sizing work; accelerators
    that are no candidate go to ``dropped`` with the reason."""
    done: dict[str, list[Candidate]] = {}
    pending: list[_Pending] = []
    problems: dict[str, str] = {}
    settings = system.optimizer
    for server in sorted(system.servers, key=lambda s: s.name):
        if server.pool_classes:  # a pool's candidates come from its ILP (services/optimizer/poolsizing.py)
            continue
        problem = _server_problem(system, lookup, server)
        if problem:
            problems[server.name] = problem
            continue
        done[server.name] = []
        svc = system.service_class(server.service_class)
        target = svc.target_for(server.model)  # type: ignore[union-attr]
        load = server.load
        idle = load.arrival_rate_rpm == 0 or load.avg_out_tokens == 0
        if idle and server.min_replicas == 0:  # docs/model.md s6: an empty allocation
            done[server.name].append(_empty(server))
            continue
        for name in _accelerator_names(lookup, server):
            perf = lookup.perf[server.model, name]
            p = perf.perf
            if p.alpha_ms == 0 and p.beta_ms == 0 and p.gamma_ms == 0:
                dropped.setdefault(server.name, {})[name] = "perfParms all zero"
                continue
            if idle:
                batch = server.max_batch_size if server.max_batch_size > 0 else max(perf.max_batch_size, 1)
                done[server.name].append(_candidate(lookup, server, perf, server.min_replicas, batch, 0, 0.0, -1))
                continue
            out = load.avg_out_tokens
            batch = batch_size(server.max_batch_size, perf, out)
            queue = server.max_queue_size if server.max_queue_size > 0 else default_queue(settings, batch)
            rate = target.slo_tps / (1000.0 * out) if target.slo_tps > 0 else load.arrival_rate_rpm / MS_PER_MINUTE
            model = replica_model_for(settings, load, p, batch, queue)
            pending.append(_Pending(server, perf, model, Targets.of(target, settings.blocking_bound), rate))
    return done, pending, problems


def _search_batches(pending: list[_Pending]) -> None:
    """Default mode (docs/model.md s4.1): each pair whose server sets no maxBatchSize gets the batch size with
    the fewest replicas, up to the rule's bound (ties: the smaller batch)."""
    free = [item for item in pending if item.server.max_batch_size <= 0 and item.model.max_batch > 1]
    problems = [BatchProblem(item.model, item.targets, item.rate_per_ms, item.server.min_replicas,
                             item.server.max_queue_size > 0) for item in free]
    for item, batch in zip(free, fewest_replica_batches(problems), strict=True):
        item.model = with_batch(item.model, batch, item.server.max_queue_size > 0)


def _size(lookup: _Lookup, done: dict[str, list[Candidate]], pending: list[_Pending],
          dropped: dict[str, dict[str, str]]) -> ChainBatch | None:
    """Size the pending pairs (identical problems once), append the feasible ones as candidates; the others go
    to ``dropped`` with the reason."""
    if not pending:
        return None
    unique: dict[tuple[ReplicaModel, Targets], int] = {}
    for item in pending:
        item.row = unique.setdefault((item.model, item.targets), len(unique))
    chains = ChainBatch.build([model for model, _ in unique])
    sizing = size_replicas(chains, [targets for _, targets in unique])
    rows_feasible = sizing.feasible
    for item in pending:
        if not rows_feasible[item.row]:
            dropped.setdefault(item.server.name, {})[item.perf.accelerator] = "SLOs unreachable"
    feasible = [item for item in pending if rows_feasible[item.row]]
    needed = [_replicas_needed(item.rate_per_ms, float(sizing.capacity_per_ms[item.row])) for item in feasible]
    # A candidate needing more than bounds.MAX_REPLICAS replicas is no candidate (docs/model.md s1).
    for item, n in zip(feasible, needed, strict=True):
        if n > MAX_REPLICAS:
            dropped.setdefault(item.server.name, {})[item.perf.accelerator] = f"needs more than {MAX_REPLICAS} replicas"
    feasible, needed = ([x for x, n in zip(feasible, needed, strict=True) if n <= MAX_REPLICAS],
                        [n for n in needed if n <= MAX_REPLICAS])
    replicas = [max(n, item.server.min_replicas, 1) for item, n in zip(feasible, needed, strict=True)]
    if feasible:
        rows = np.array([item.row for item in feasible])
        per_replica = np.array([item.rate_per_ms / n for item, n in zip(feasible, replicas, strict=True)])
        itl, ttft = latency_ms(chains, chain_metrics(chains, per_replica, rows), rows)
        for k, item in enumerate(feasible):
            done[item.server.name].append(_candidate(
                lookup, item.server, item.perf, replicas[k], item.model.max_batch, item.model.max_queue,
                item.rate_per_ms, item.row, float(itl[k]), float(ttft[k])))
    return chains


def _replicas_needed(rate_per_ms: float, capacity_per_ms: float) -> int:
    """ceil(rate / capacity), or MAX_REPLICAS + 1 when that is beyond the bound (also for a capacity that
    underflowed to 0), so the count never overflows."""
    if not capacity_per_ms > 0 or rate_per_ms / capacity_per_ms > MAX_REPLICAS:
        return MAX_REPLICAS + 1
    return math.ceil(rate_per_ms / capacity_per_ms)


def _infeasible_reason(system: SystemData, server: Server) -> str:
    target = system.service_class(server.service_class).target_for(server.model)  # type: ignore[union-attr]
    percentiles = "".join(f", {metric.upper()} P{q} {value:g} ms" for metric, q, value in target.percentile_targets())
    return (f"no accelerator meets the SLOs (ITL {target.slo_itl_ms:g} ms, TTFT {target.slo_ttft_ms:g} ms, "
            f"tps {target.slo_tps:g}{percentiles}) for model {server.model!r}")


def build_candidates(system: SystemData) -> CandidateSet:
    """Validate ``system`` and build every server's candidates (docs/model.md s6).

    Raises InvalidInputError for duplicate names, unknown accelerators in model data or negative figures.
    Servers without any candidate appear in ``unallocated`` with the reason.
    """
    validate_system(system)
    lookup = _Lookup.of(system)
    dropped: dict[str, dict[str, str]] = {}
    done, pending, problems = _collect(system, lookup, dropped)
    if system.optimizer.solver != SolverKind.GREEDY:
        _search_batches(pending)
    chains = _size(lookup, done, pending, dropped)
    options: dict[str, tuple[Candidate, ...]] = {}
    servers = {s.name: s for s in system.servers}
    for name, candidates in done.items():
        if candidates:
            options[name] = tuple(sorted(candidates, key=lambda c: c.sort_key))
        else:
            problems[name] = _infeasible_reason(system, servers[name])
    priorities = {}
    for name in options:
        svc = system.service_class(servers[name].service_class)
        priority = svc.priority if svc is not None else LOWEST_PRIORITY
        priorities[name] = priority if 1 <= priority <= LOWEST_PRIORITY else LOWEST_PRIORITY
    return CandidateSet(options, priorities, problems, chains, servers, dropped)
