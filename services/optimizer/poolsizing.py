"""Pools in the control cycle (docs/contract.md s10, docs/model.md s13): each pool server (Server.pool_classes
set: one Deployment, one model, several classes sharing its replicas with vLLM's priority scheduling) is sized
by the pool ILP of services/optimizer/pools.py, one accelerator at a time, and the cheapest accelerator that
serves every class is kept.

A class's latency bound is its mean end-to-end latency from the service class's targets for the pool's model:
L_c = (slo_ttft_ms + slo_itl_ms x (K - 1)) / 1000 s, K the pool's mean output tokens (the ILP bounds the mean
end-to-end latency, not TTFT and ITL separately). The replica's latency curve is our queueing model at the
pool's request shape (QueueingCurve), read under priority by the conservative model (pools.CobhamLatency).

Limited capacity (docs/model.md s13): pools are servers like the others. Each pool's candidates
(pool_candidates) are one per accelerator whose ILP answer, with no card limit, serves every class within its
bound: its replicas, cost, the cards they take and the transition-penalty value of an ordinary candidate; its
priority is its most important class's. The allocation solvers (greedy and exact) choose among them with the
ordinary servers' candidates; fill_pools turns the choice into pool allocations: a pool chosen in full gets its
answer, one the saturation policy gave fewer replicas is re-solved on them, and one left with nothing is
sized on the cards of its types still free after every other server (its ILP serves its most important classes
first), a saturated allocation that does not count as served at its level. Pools are sized at nominal
perfParms under robustness (no robust row). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from services.core.model import LOWEST_PRIORITY, Allocation, Server, SystemData
from services.optimizer import pools as pool_ilp
from services.optimizer.candidates import MS_PER_MINUTE, Candidate, transition_value
from services.optimizer.pools import InstanceType, PoolAnswer, QueueingCurve, ServiceClass, solve_pool
from services.optimizer.sizing import batch_size
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import default_queue, replica_model_for


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The pools as candidates of the allocation solvers (module docstring).

    ``options``: pool server -> its candidates, sorted as ordinary ones (value, cost, accelerator), each serving
    every class; ``priorities``: its most important class's priority (1..100); ``unallocated``: pools without
    any candidate and why; ``dropped``: pool -> accelerator -> why that one is no candidate; ``answers``:
    (pool, accelerator) -> the allocation behind the candidate."""

    options: Mapping[str, tuple[Candidate, ...]] = field(default_factory=dict)
    priorities: Mapping[str, int] = field(default_factory=dict)
    unallocated: Mapping[str, str] = field(default_factory=dict)
    dropped: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    answers: Mapping[tuple[str, str], Allocation] = field(default_factory=dict)
    servers: Mapping[str, Server] = field(default_factory=dict)
    """Every pool server of the system by name (with candidates or not)."""


def is_pool(server: Server) -> bool:
    """Whether ``server`` is a pool (it declares its classes)."""
    return bool(server.pool_classes)


def latency_bounds_s(system: SystemData, server: Server) -> list[float] | str:
    """Each pool class's mean end-to-end latency bound (s), or the reason none can be given."""
    bounds = []
    for pc in server.pool_classes:
        svc = system.service_class(pc.name)
        target = svc.target_for(server.model) if svc is not None else None
        bound = target.mean_latency_s(server.load.avg_out_tokens) if target is not None else None
        if bound is None:
            return f"pool class {pc.name!r} has no TTFT or ITL target for model {server.model!r}"
        bounds.append(bound)
    return bounds


def pool_priority(system: SystemData, server: Server) -> int:
    """A pool's priority level in the allocation (1 most important .. 100): its most important class's service
    class priority; a class unknown to the data counts as the lowest."""
    levels = []
    for pc in server.pool_classes:
        svc = system.service_class(pc.name)
        level = svc.priority if svc is not None else LOWEST_PRIORITY
        levels.append(level if 1 <= level <= LOWEST_PRIORITY else LOWEST_PRIORITY)
    return min(levels, default=LOWEST_PRIORITY)


def _cards(system: SystemData, server: Server, accelerator: str) -> tuple[str, int]:
    acc, perf = system.accelerator(accelerator), system.perf(server.model, accelerator)
    per = max(perf.acc_count if perf else 1, 1) * max(acc.multiplicity if acc else 1, 1)
    return (acc.type if acc else accelerator), per


def _accelerators(system: SystemData, server: Server) -> list[str]:
    """The pool's accelerator names, sorted (only the current one with keep_accelerator)."""
    names = [p.accelerator for p in system.models if p.model == server.model]
    if server.keep_accelerator and server.current.accelerator:
        names = [n for n in names if n == server.current.accelerator]
    return sorted(names)


def _sized(system: SystemData, server: Server, name: str, bounds: list[float], available: int | None,
           time_limit_s: float) -> tuple[PoolAnswer, Allocation] | None:
    """The pool ILP on accelerator ``name`` with at most ``available`` replicas (None: unlimited), and its
    answer as an Allocation; None when the accelerator has no data for the model or nothing serves a class."""
    acc, perf = system.accelerator(name), system.perf(server.model, name)
    if acc is None or perf is None or server.load.avg_out_tokens <= 0:
        return None
    classes = [ServiceClass(pc.name, pc.load.arrival_rate_rpm, bound)
               for pc, bound in zip(server.pool_classes, bounds, strict=True)]
    batch = batch_size(server.max_batch_size, perf, server.load.avg_out_tokens)
    queue = server.max_queue_size if server.max_queue_size > 0 else default_queue(system.optimizer, batch)
    curve = QueueingCurve(replica_model_for(system.optimizer, server.load, perf.perf, batch, queue))
    cost = acc.cost_per_hour * max(perf.acc_count, 1)
    if available is not None:
        available = max(available, 0)
    itype = InstanceType(name, curve.max_rate_rpm(), curve, cost, available, pool_ilp.PriorityModel.CONSERVATIVE)
    answer = solve_pool([itype], classes, pool_ilp.Policy.PRIORITY, time_limit_s)
    if answer.status == "INFEASIBLE":
        return None
    return answer, _allocation(server, itype, answer, batch, queue, available)


def size_pool(system: SystemData, server: Server, cards_left: Mapping[str, int] | None,
              time_limit_s: float, accelerators: list[str] | None = None) -> tuple[Allocation | None, str]:
    """One pool server's allocation (None and the reason when no accelerator serves any of it).

    ``cards_left`` per accelerator type (None: unlimited); ``accelerators`` limits the choice (default: every
    accelerator with data for the model, only the current one with keep_accelerator). The answer serving the
    most demand (most important classes first) at the lowest cost wins; one that leaves demand unmet is a
    saturated allocation with its unserved rate.
    """
    bounds = latency_bounds_s(system, server)
    if isinstance(bounds, str):
        return None, bounds
    best: tuple[tuple[float, ...], Allocation] | None = None
    for name in accelerators if accelerators is not None else _accelerators(system, server):
        card_type, per = _cards(system, server, name)
        available = None if cards_left is None else cards_left.get(card_type, 0) // per
        if available is not None and available <= 0:
            continue  # no replica of it fits: its answer serves nothing
        sized = _sized(system, server, name, bounds, available, time_limit_s)
        if sized is None:
            continue
        answer, allocation = sized
        key = tuple(answer.unmet_rpm) + (allocation.cost_per_hour,)
        if best is None or key < best[0]:
            best = (key, allocation)
    if best is None:
        return None, f"no accelerator with perfParms for model {server.model!r} serves the pool"
    return best[1], ""


def _allocation(server: Server, itype: InstanceType, answer: PoolAnswer, batch: int, queue: int,
                available: int | None) -> Allocation:
    """The answer as an Allocation: replicas (at least the server's minimum, within what is available), each
    class's rate and predicted latency per replica, the FCFS TTFT/ITL of a replica at its total rate."""
    count = max(answer.count, server.min_replicas)
    if available is not None:
        count = min(count, max(available, answer.count))
    totals = [sum(r.rates_rpm[c] for r in answer.instances) for c in range(len(server.pool_classes))]
    per = tuple(t / count for t in totals) if count else tuple(0.0 for _ in totals)
    predicted = itype.priority_latency(per) if count else tuple(None for _ in per)
    unserved = sum(answer.unmet_rpm)
    ttft_ms = itl_ms = 0.0
    if count and sum(per) > 0:
        point = analyze_point(itype.curve.replica, sum(per) / 60_000.0)  # type: ignore[attr-defined]
        ttft_ms, itl_ms = point.ttft_ms, point.itl_ms
    return Allocation(accelerator=itype.name, num_replicas=count, max_batch=batch,
                      cost_per_hour=count * itype.cost, itl_ms=itl_ms, ttft_ms=ttft_ms, load=server.load,
                      max_queue=queue, saturated=unserved > 0, unserved_rate_rpm=unserved, class_rpm=per,
                      class_latency_s=tuple(0.0 if v is None or not math.isfinite(v) else v for v in predicted))


def _candidate(system: SystemData, server: Server, alloc: Allocation) -> Candidate:
    """The allocation solvers' view of a pool answer: cards, cost and value as an ordinary candidate's
    (services/optimizer/candidates.py); ``row`` -1 (no chain: the pool's figures are its own)."""
    card_type, per = _cards(system, server, alloc.accelerator)
    per_replica = alloc.cost_per_hour / alloc.num_replicas if alloc.num_replicas else 0.0
    cur = server.current
    value = transition_value(cur.accelerator, cur.num_replicas, cur.cost_per_hour, alloc.accelerator,
                             alloc.num_replicas, alloc.cost_per_hour)
    return Candidate(server.name, alloc.accelerator, card_type, per, per_replica, alloc.num_replicas,
                     alloc.max_batch, alloc.max_queue, server.load.arrival_rate_rpm / MS_PER_MINUTE, value,
                     alloc.itl_ms, alloc.ttft_ms, -1)


def pool_candidates(system: SystemData, time_limit_s: float, capacity: Mapping[str, int] | None = None
                    ) -> PoolOptions:
    """Every pool server's candidates (module docstring): per accelerator, the ILP's answer with no card limit,
    kept when it serves every class within its bound; ``time_limit_s`` per ILP. With ``capacity`` (cards per
    type; None: unlimited) an accelerator of which not one replica fits is not tried."""
    options: dict[str, tuple[Candidate, ...]] = {}
    priorities: dict[str, int] = {}
    unallocated: dict[str, str] = {}
    dropped: dict[str, dict[str, str]] = {}
    answers: dict[tuple[str, str], Allocation] = {}
    pools = {s.name: s for s in system.servers if is_pool(s)}
    for name, server in sorted(pools.items()):
        bounds = latency_bounds_s(system, server)
        if isinstance(bounds, str):
            unallocated[name] = bounds
            continue
        found = []
        for acc in _accelerators(system, server):
            card_type, per = _cards(system, server, acc)
            if capacity is not None and capacity.get(card_type, 0) < per:
                dropped.setdefault(name, {})[acc] = f"no replica fits the capacity ({per} {card_type} needed)"
                continue
            sized = _sized(system, server, acc, bounds, None, time_limit_s)
            if sized is None:
                dropped.setdefault(name, {})[acc] = "no perfParms or the ILP serves no class"
            elif sized[1].saturated:
                dropped.setdefault(name, {})[acc] = f"{sized[1].unserved_rate_rpm:g} RPM beyond every class's bound"
            else:
                answers[name, acc] = sized[1]
                found.append(_candidate(system, server, sized[1]))
        if found:
            options[name] = tuple(sorted(found, key=lambda c: c.sort_key))
            priorities[name] = pool_priority(system, server)
        else:
            unallocated[name] = f"no accelerator with perfParms for model {server.model!r} serves the pool"
    return PoolOptions(options, priorities, unallocated, dropped, answers, pools)


def fill_pools(system: SystemData, pools: PoolOptions, full: Mapping[str, Candidate],
               partial: Mapping[str, tuple[Candidate, int]], left: MutableMapping[str, int] | None,
               time_limit_s: float) -> dict[str, Allocation]:
    """The pools' allocations for the solver's choice (module docstring): ``full`` / ``partial`` are the
    solver's full and best-effort (candidate, replicas) choices by server (ordinary ones are ignored);
    ``left`` the cards still free per type (None: unlimited), from which a pool given nothing is sized, in
    priority then name order, and which it updates. A pool given no replica is left out (the caller gives the
    reason)."""
    allocations: dict[str, Allocation] = {}
    order = sorted(pools.servers, key=lambda n: (pools.priorities.get(n, LOWEST_PRIORITY), n))
    for name in order:
        server = pools.servers[name]
        if name in full:
            allocations[name] = pools.answers[name, full[name].accelerator]
            continue
        if name in partial:
            cand, replicas = partial[name]
            allocation, _ = size_pool(system, server, {cand.accelerator_type: replicas * cand.units_per_replica},
                                      time_limit_s, [cand.accelerator])
        else:
            allocation, _ = size_pool(system, server, left, time_limit_s)
            if allocation is not None and left is not None:
                card_type, per = _cards(system, server, allocation.accelerator)
                left[card_type] = left.get(card_type, 0) - allocation.num_replicas * per
        if allocation is not None and allocation.num_replicas > 0:
            allocations[name] = allocation
    return allocations
