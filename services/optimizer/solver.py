"""The allocation solver: unlimited mode, the exact solver (default, services/optimizer/exact.py), Inferno's
limited-capacity greedy with priority groups and regret ordering, and the saturation policies for servers that
did not fit (docs/model.md s6, s8, s9).

solve(system, defaults) -> SolveResult. Best-effort allocations are re-evaluated at their real per-replica load
and flagged saturated with their unserved rate. Pure: no I/O, no clock (CP-SAT keeps its own time limit).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from services.core.model import (
    SLO_PERCENTILES,
    Allocation,
    OptimizerSettings,
    SaturationPolicy,
    Solution,
    SolverKind,
    SystemData,
)
from services.optimizer.candidates import MS_PER_MINUTE, Candidate, CandidateSet, build_candidates
from services.optimizer.exact import Outcome, solve_exact
from services.optimizer.percentiles import predict_percentiles
from services.optimizer.poolsizing import PoolOptions, fill_pools, pool_candidates
from services.optimizer.robust import RobustReport, RobustSet, robust_candidates, worst_case
from services.perfmodel.queueing import chain_metrics, latency_ms

DEFAULT_TIME_LIMIT_S = 10.0
"""The exact solver's time limit when neither the data (timeLimitSeconds) nor a setting gives one."""


@dataclass(frozen=True, slots=True)
class SolverDefaults:
    """What applies when the system's optimizer settings leave it open: the service's or CLI's settings."""

    solver: SolverKind = SolverKind.EXACT
    time_limit_s: float = DEFAULT_TIME_LIMIT_S


DEFAULTS = SolverDefaults()
"""Exact, 10 s: what applies when neither the data nor a setting says otherwise."""


def choose_solver(settings: OptimizerSettings, defaults: SolverDefaults = DEFAULTS) -> SolverKind:
    """The solver: the data's ``solver`` when set, else exact when Inferno's ``milpSolver`` is true, else the
    default (docs/model.md s9)."""
    if settings.solver is not None:
        return settings.solver
    if settings.milp_solver:
        return SolverKind.EXACT
    return defaults.solver


def time_limit(settings: OptimizerSettings, defaults: SolverDefaults = DEFAULTS) -> float:
    """The exact solver's time limit, s: the data's ``timeLimitSeconds`` when > 0, else the default."""
    return settings.time_limit_s if settings.time_limit_s > 0 else defaults.time_limit_s


@dataclass(frozen=True, slots=True)
class SolveStats:
    """How the answer was found. ``outcome`` (exact solver only): optimal | feasible | fallback | trivial;
    ``objective`` / ``best_bound`` / ``greedy_objective`` are cost plus transition penalty per hour;
    ``served_by_priority`` counts fully allocated servers per priority level."""

    solver: str
    outcome: str = ""
    objective: float | None = None
    best_bound: float | None = None
    gap: float | None = None
    exact_solve_time_ms: float | None = None
    time_limit_s: float | None = None
    fallback_reason: str = ""
    served_by_priority: Mapping[int, int] = field(default_factory=dict)
    greedy_objective: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The figures that are set, JSON-ready (the CLI's --json and the tests)."""
        out: dict[str, object] = {"solver": self.solver}
        for key in ("outcome", "objective", "best_bound", "gap", "exact_solve_time_ms", "time_limit_s",
                    "fallback_reason", "greedy_objective"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        out["served_by_priority"] = {str(k): v for k, v in sorted(self.served_by_priority.items())}
        return out


@dataclass(frozen=True, slots=True)
class SolveResult:
    """The solution, how many candidates were weighed, which solver ran (unlimited | greedy | exact), and how."""

    solution: Solution
    candidates: int
    solver: str
    stats: SolveStats = field(default_factory=lambda: SolveStats(""))
    robust: RobustReport | None = None
    """The price of robustness and worst cases, when robustness is on (docs/model.md s10.2)."""


@dataclass(slots=True)
class _Entry:
    """A server in the greedy queue: its sorted candidates and the one it currently asks for."""

    server: str
    priority: int
    options: tuple[Candidate, ...]
    index: int = 0

    def key(self) -> tuple[int, float, float, str]:
        """Priority ascending, regret descending, value descending, then name (deterministic)."""
        current = self.options[self.index]
        has_next = self.index + 1 < len(self.options)
        regret = self.options[self.index + 1].value - current.value if has_next else math.inf
        return (self.priority, -regret, -current.value, self.server)


@dataclass(slots=True)
class _State:
    """Cards left per type, full allocations and best-effort (candidate, replicas) per server."""

    available: dict[str, int]
    full: dict[str, Candidate] = field(default_factory=dict)
    partial: dict[str, tuple[Candidate, int]] = field(default_factory=dict)

    def room(self, candidate: Candidate) -> int:
        """Replicas of ``candidate`` that still fit."""
        if candidate.units_per_replica <= 0:
            return candidate.num_replicas
        return self.available.get(candidate.accelerator_type, 0) // candidate.units_per_replica

    def take(self, candidate: Candidate, replicas: int) -> None:
        """Remove ``replicas`` replicas' cards of ``candidate`` from what is available."""
        kind = candidate.accelerator_type
        self.available[kind] = self.available.get(kind, 0) - replicas * candidate.units_per_replica


def _greedy(entries: Iterable[_Entry], state: _State) -> list[_Entry]:
    """Allocate in queue order, moving an entry to its next candidate when it does not fit (docs/model.md s6).

    Returns the entries that ran out of candidates, in the order they did.
    """
    queue = sorted(entries, key=_Entry.key)
    failed: list[_Entry] = []
    while queue:
        top = queue.pop(0)
        candidate = top.options[top.index]
        if state.room(candidate) >= candidate.num_replicas:
            state.take(candidate, candidate.num_replicas)
            state.full[top.server] = candidate
            continue
        top.index += 1
        if top.index == len(top.options):
            failed.append(top)
        else:
            bisect.insort(queue, top, key=_Entry.key)
    return failed


def _exhaustive(entries: list[_Entry], state: _State) -> None:
    """PriorityExhaustive: in order, the most replicas that fit of the first candidate with room."""
    for entry in entries:
        for candidate in entry.options:
            replicas = min(state.room(candidate), candidate.num_replicas)
            if replicas > 0:
                state.take(candidate, replicas)
                state.partial[entry.server] = (candidate, replicas)
                break


def _round_robin(entries: list[_Entry], state: _State) -> None:
    """RoundRobin over ``entries``: each fixes its first candidate with room for one replica, then rounds
    give one replica per visit while its type has room (never more than it needs)."""
    chosen: dict[str, Candidate] = {}
    given: dict[str, int] = {}
    active = list(entries)
    while active:
        still: list[_Entry] = []
        for entry in active:
            if entry.server not in chosen:
                pick = next((c for c in entry.options if c.units_per_replica > 0 and state.room(c) >= 1), None)
                if pick is None:
                    continue
                chosen[entry.server] = pick
            candidate = chosen[entry.server]
            if state.room(candidate) >= 1 and given.get(entry.server, 0) < candidate.num_replicas:
                state.take(candidate, 1)
                given[entry.server] = given.get(entry.server, 0) + 1
                still.append(entry)
        active = still
    for name, replicas in given.items():
        state.partial[name] = (chosen[name], replicas)


def _saturate(policy: SaturationPolicy, failed: list[_Entry], state: _State) -> None:
    """Apply the saturation policy to the entries the greedy could not allocate (docs/model.md s6)."""
    if policy == SaturationPolicy.PRIORITY_EXHAUSTIVE:
        _exhaustive(failed, state)
    elif policy == SaturationPolicy.ROUND_ROBIN:
        _round_robin(failed, state)
    elif policy == SaturationPolicy.PRIORITY_ROUND_ROBIN:
        for priority in sorted({e.priority for e in failed}):
            _round_robin([e for e in failed if e.priority == priority], state)


def _limited(cs: CandidateSet, system: SystemData) -> _State:
    """Greedy per priority group (or once over all if delayedBestEffort), then the saturation policy."""
    state = _State(dict(system.capacity.counts))
    entries = [_Entry(name, cs.priorities[name], options) for name, options in cs.options.items()]
    policy = system.optimizer.saturation_policy
    if system.optimizer.delayed_best_effort:
        _saturate(policy, _greedy(entries, state), state)
        return state
    for priority in sorted({e.priority for e in entries}):
        _saturate(policy, _greedy([e for e in entries if e.priority == priority], state), state)
    return state


def _allocation(cs: CandidateSet, candidate: Candidate) -> Allocation:
    return Allocation(candidate.accelerator, candidate.num_replicas, candidate.max_batch, candidate.cost_per_hour,
                      candidate.itl_ms, candidate.ttft_ms, cs.servers[candidate.server].load, candidate.max_queue)


def _with_percentiles(cs: CandidateSet, allocations: dict[str, Allocation], chosen: Mapping[str, Candidate]
                      ) -> dict[str, Allocation]:
    """``allocations`` with their predicted TTFT / ITL percentiles filled in (docs/model.md s3.2), each replica at
    its share of the load, all in one vectorised evaluation; idle ones (no chain row) keep zeros."""
    names = [n for n, a in allocations.items() if n in chosen and chosen[n].row >= 0 and a.num_replicas > 0]
    if not names or cs.chains is None:
        return allocations
    rows = np.array([chosen[n].row for n in names])
    rates = np.array([chosen[n].rate_per_ms / allocations[n].num_replicas for n in names])
    got = predict_percentiles(cs.chains, rates, SLO_PERCENTILES, rows)
    result = dict(allocations)
    for k, name in enumerate(names):
        result[name] = replace(allocations[name], **{key: value if np.isfinite(value) else 0.0
                                                     for key, value in got.figures(k).items()})
    return result


def _best_effort(cs: CandidateSet, partial: dict[str, tuple[Candidate, int]]) -> dict[str, Allocation]:
    """Allocations of ``r`` < needed replicas, re-evaluated at Lambda / r, saturated, with the unserved rate.

    An idle server's partial allocation (fewer than its minNumReplicas, no load to serve) keeps its figures
    and is not saturated: it has no chain to evaluate.
    """
    result = {}
    idle = sorted(n for n, (c, _) in partial.items() if c.row < 0)
    for name in idle:
        candidate, replicas = partial[name]
        result[name] = Allocation(candidate.accelerator, replicas, candidate.max_batch,
                                  candidate.cost_per_replica * replicas, candidate.itl_ms, candidate.ttft_ms,
                                  cs.servers[name].load, candidate.max_queue)
    names = sorted(n for n, (c, _) in partial.items() if c.row >= 0)
    if not names or cs.chains is None:
        return result
    rows = np.array([partial[n][0].row for n in names])
    rates = np.array([partial[n][0].rate_per_ms / partial[n][1] for n in names])
    metrics = chain_metrics(cs.chains, rates, rows)
    itl, ttft = latency_ms(cs.chains, metrics, rows)
    for k, name in enumerate(names):
        candidate, replicas = partial[name]
        unserved = max(candidate.rate_per_ms - replicas * float(metrics.throughput_per_ms[k]), 0.0)
        result[name] = Allocation(candidate.accelerator, replicas, candidate.max_batch,
                                  candidate.cost_per_replica * replicas, float(itl[k]), float(ttft[k]),
                                  cs.servers[name].load, candidate.max_queue, saturated=True,
                                  unserved_rate_rpm=unserved * MS_PER_MINUTE)
    return result


def _shortfall(cs: CandidateSet, name: str, available: Mapping[str, int]) -> str:
    """Why ``name`` got nothing: every candidate with the cards it needs and those left of its type, then the
    accelerators that were no candidate and why."""
    needs = [f"{c.accelerator} needs {c.units} {c.accelerator_type} ({c.num_replicas} replicas, batch {c.max_batch}), "
             f"{max(available.get(c.accelerator_type, 0), 0)} left" for c in cs.options[name]]
    reason = "insufficient capacity: " + "; ".join(needs)
    others = cs.dropped.get(name, {})
    if others:
        reason += "; not candidates: " + "; ".join(f"{acc}: {why}" for acc, why in sorted(others.items()))
    return reason


def _served(cs: CandidateSet, full: Mapping[str, Candidate]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for name in full:
        counts[cs.priorities[name]] = counts.get(cs.priorities[name], 0) + 1
    return counts


def _value(full: Mapping[str, Candidate]) -> float:
    return sum(c.value for c in full.values())


def _exact(cs: CandidateSet, system: SystemData, limit_s: float, rs: RobustSet | None = None
           ) -> tuple[_State, SolveStats]:
    """Exact full allocations (greedy answer as hint and fallback), then the saturation policy on the rest;
    ``rs`` adds the robust rows to the model (docs/model.md s10.2)."""
    greedy = _limited(cs, system)
    result = solve_exact(cs.options, cs.priorities, dict(system.capacity.counts), greedy.full, limit_s, robust=rs)
    stats = SolveStats("exact", result.outcome, result.objective,
                       result.best_bound if math.isfinite(result.best_bound) else None,
                       result.gap if math.isfinite(result.gap) else None, result.wall_time_s * 1000.0, limit_s,
                       result.reason if result.outcome == Outcome.FALLBACK else "", dict(result.served_by_priority),
                       _value(greedy.full))
    if result.outcome == Outcome.FALLBACK:
        return greedy, stats
    state = _State(dict(system.capacity.counts))
    for name, candidate in result.chosen.items():
        state.take(candidate, candidate.num_replicas)
        state.full[name] = candidate
    rest = sorted((_Entry(name, cs.priorities[name], options) for name, options in cs.options.items()
                   if name not in state.full), key=_Entry.key)
    policy = system.optimizer.saturation_policy
    if system.optimizer.delayed_best_effort:
        _saturate(policy, rest, state)
    else:  # as the greedy: each priority group's best effort before the next group's
        for priority in sorted({e.priority for e in rest}):
            _saturate(policy, [e for e in rest if e.priority == priority], state)
    return state, stats


def solve(system: SystemData, defaults: SolverDefaults = DEFAULTS) -> SolveResult:
    """Allocate every server of ``system`` (docs/model.md s6, s8, s9, s10.2).

    Unlimited mode gives each server its least-value candidate; otherwise the chosen solver (choose_solver:
    exact by default, greedy in Inferno-compatibility mode) allocates against the capacity and the saturation
    policy hands out what is left. Servers that get nothing are listed in ``Solution.unallocated`` with the
    reason. With robustness on (Gamma > 0) the candidates are sized for the worst case (and the exact model
    carries the robust row), the same system is also solved at Gamma 0, and ``SolveResult.robust`` reports the
    price of robustness and each server's worst-case ITL / TTFT. Raises InvalidInputError for an inconsistent
    system.
    """
    kind = choose_solver(system.optimizer, defaults)
    system = replace(system, optimizer=replace(system.optimizer, solver=kind))  # the model follows the mode
    robustness = system.optimizer.robustness
    cs, pools = _candidates(system, defaults)
    if robustness is None or not robustness.active:
        return _solve(system, kind, defaults, cs, pools=pools)
    # robustness leaves the nominal candidates as they are: built once for both
    nominal = _solve(replace(system, optimizer=replace(system.optimizer, robustness=None)), kind, defaults, cs,
                     pools=pools)
    rs = robust_candidates(system, cs)
    result = _solve(system, kind, defaults, rs.candidates, rs, pools)
    allocations = result.solution.allocations
    report = RobustReport(robustness.gamma, result.solution.total_cost_per_hour,
                          nominal.solution.total_cost_per_hour, _full(result.solution),
                          _full(nominal.solution), worst_case(rs, allocations))
    return replace(result, robust=report)


def _candidates(system: SystemData, defaults: SolverDefaults) -> tuple[CandidateSet, PoolOptions]:
    """Every server's candidates: the ordinary ones (build_candidates) and the pools' (pool_candidates, one per
    accelerator serving every class, docs/model.md s13) in one set, so that the solvers weigh pools as servers
    like the others; the pools' options are returned too, to turn a chosen pool candidate into its allocation."""
    cs = build_candidates(system)
    capacity = None if system.optimizer.unlimited else system.capacity.counts
    pools = pool_candidates(system, time_limit(system.optimizer, defaults), capacity)
    if not pools.servers:
        return cs, pools
    merged = replace(cs, options={**cs.options, **pools.options}, priorities={**cs.priorities, **pools.priorities},
                     unallocated={**cs.unallocated, **pools.unallocated}, dropped={**cs.dropped, **pools.dropped})
    return merged, pools


def _full(solution: Solution) -> int:
    """Servers allocated in full (not best effort)."""
    return sum(not a.saturated for a in solution.allocations.values())


def _solve(system: SystemData, kind: SolverKind, defaults: SolverDefaults, cs: CandidateSet,
           rs: RobustSet | None = None, pools: PoolOptions | None = None) -> SolveResult:
    """One solve over the candidates ``cs`` (``rs.candidates`` when ``rs`` adds the robust rows); ``pools``:
    the pool servers among them, whose chosen candidates become their pool allocations (fill_pools)."""
    pools = pools or PoolOptions()
    unallocated = dict(cs.unallocated)
    limit_s = time_limit(system.optimizer, defaults)
    if system.optimizer.unlimited:
        chosen = {name: options[0] for name, options in cs.options.items()}
        allocations = _with_percentiles(cs, {name: _allocation(cs, c) for name, c in chosen.items()
                                             if name not in pools.servers}, chosen)
        allocations.update(fill_pools(system, pools, chosen, {}, None, limit_s))
        stats = SolveStats("unlimited", served_by_priority=_served(cs, chosen), objective=_value(chosen))
        unallocated = {n: why for n, why in unallocated.items() if n not in allocations}
        return SolveResult(Solution(allocations, unallocated), cs.count, "unlimited", stats)
    if kind == SolverKind.GREEDY:
        state = _limited(cs, system)
        stats = SolveStats("greedy", objective=_value(state.full), served_by_priority=_served(cs, state.full))
    else:
        state, stats = _exact(cs, system, limit_s, rs)
    allocations = {name: _allocation(cs, c) for name, c in state.full.items() if name not in pools.servers}
    allocations.update(_best_effort(cs, {n: p for n, p in state.partial.items() if n not in pools.servers}))
    allocations = _with_percentiles(cs, allocations, {**state.full, **{n: c for n, (c, _) in state.partial.items()}})
    allocations.update(fill_pools(system, pools, state.full, state.partial, state.available, limit_s))
    for name in cs.options:
        if name not in allocations:
            unallocated[name] = _shortfall(cs, name, state.available)
    unallocated = {n: why for n, why in unallocated.items() if n not in allocations}
    return SolveResult(Solution(allocations, unallocated), cs.count, stats.solver, stats)


def units_used(system: SystemData, solution: Solution) -> dict[str, int]:
    """Cards taken per accelerator type by ``solution``: replicas x accCount x multiplicity, summed."""
    models = {s.name: s.model for s in system.servers}
    used: dict[str, int] = {}
    for name, alloc in solution.allocations.items():
        acc = system.accelerator(alloc.accelerator)
        perf = system.perf(models.get(name, ""), alloc.accelerator)
        if acc is None or perf is None:
            continue
        used[acc.type] = used.get(acc.type, 0) + alloc.num_replicas * max(perf.acc_count, 1) * max(acc.multiplicity, 1)
    return used
