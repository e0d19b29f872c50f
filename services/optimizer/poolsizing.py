"""Pools in the control cycle (docs/contract.md s10, docs/model.md s13): each pool server (Server.pool_classes
set: one Deployment, one model, several classes sharing its replicas with vLLM's priority scheduling) is sized
by the pool ILP of services/optimizer/pools.py, one accelerator at a time, and the cheapest accelerator that
serves every class is kept.

A class's latency bound is its mean end-to-end latency from the service class's targets for the pool's model:
L_c = (slo_ttft_ms + slo_itl_ms x (K - 1)) / 1000 s, K the pool's mean output tokens (the ILP bounds the mean
end-to-end latency, not TTFT and ITL separately). The replica's latency curve is our queueing model at the
pool's request shape (QueueingCurve), read under priority by the conservative model (pools.CobhamLatency).

Limited capacity: pools are sized before the other servers, in name order, each on the cards its accelerator
type has left (``available`` replicas in the ILP), and what they take is charged against the capacity the
other servers' solver then gets. They are not candidates of the exact solver: a pool never yields cards to a
more important ordinary server. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from services.core.model import Allocation, Server, SystemData
from services.optimizer.pools import (
    InstanceType,
    Policy,
    PoolAnswer,
    PriorityModel,
    QueueingCurve,
    ServiceClass,
    solve_pool,
)
from services.optimizer.sizing import batch_size
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import default_queue, replica_model_for


@dataclass(frozen=True, slots=True)
class PoolSizing:
    """The pools' answer: ``allocations`` and ``unallocated`` (reason) by server name, and the cards they take
    per accelerator type (``used``)."""

    allocations: Mapping[str, Allocation]
    unallocated: Mapping[str, str]
    used: Mapping[str, int]


def is_pool(server: Server) -> bool:
    """Whether ``server`` is a pool (it declares its classes)."""
    return bool(server.pool_classes)


def latency_bounds_s(system: SystemData, server: Server) -> list[float] | str:
    """Each pool class's mean end-to-end latency bound (s), or the reason none can be given."""
    out = max(server.load.avg_out_tokens, 1.0)
    bounds = []
    for pc in server.pool_classes:
        svc = system.service_class(pc.name)
        target = svc.target_for(server.model) if svc is not None else None
        if target is None or (target.slo_ttft_ms <= 0 and target.slo_itl_ms <= 0):
            return f"pool class {pc.name!r} has no TTFT or ITL target for model {server.model!r}"
        bounds.append((target.slo_ttft_ms + target.slo_itl_ms * (out - 1.0)) / 1000.0)
    return bounds


def _cards(system: SystemData, server: Server, accelerator: str) -> tuple[str, int]:
    acc, perf = system.accelerator(accelerator), system.perf(server.model, accelerator)
    per = max(perf.acc_count if perf else 1, 1) * max(acc.multiplicity if acc else 1, 1)
    return (acc.type if acc else accelerator), per


def size_pool(system: SystemData, server: Server, cards_left: Mapping[str, int] | None,
              time_limit_s: float) -> tuple[Allocation | None, str]:
    """One pool server's allocation (None and the reason when no accelerator serves any of it).

    ``cards_left`` per accelerator type (None: unlimited). Among the model's accelerators (only the current one
    with keep_accelerator), the answer serving the most demand (most important classes first) at the lowest
    cost wins; one that leaves demand unmet is a saturated allocation with its unserved rate.
    """
    bounds = latency_bounds_s(system, server)
    if isinstance(bounds, str):
        return None, bounds
    classes = [ServiceClass(pc.name, pc.load.arrival_rate_rpm, bound)
               for pc, bound in zip(server.pool_classes, bounds, strict=True)]
    names = [p.accelerator for p in system.models if p.model == server.model]
    if server.keep_accelerator and server.current.accelerator:
        names = [n for n in names if n == server.current.accelerator]
    best: tuple[tuple[float, ...], Allocation] | None = None
    for name in sorted(names):
        acc, perf = system.accelerator(name), system.perf(server.model, name)
        if acc is None or perf is None or server.load.avg_out_tokens <= 0:
            continue
        card_type, per = _cards(system, server, name)
        available = None if cards_left is None else cards_left.get(card_type, 0) // per
        batch = batch_size(server.max_batch_size, perf, server.load.avg_out_tokens)
        queue = server.max_queue_size if server.max_queue_size > 0 else default_queue(system.optimizer, batch)
        curve = QueueingCurve(replica_model_for(system.optimizer, server.load, perf.perf, batch, queue))
        cost = acc.cost_per_hour * max(perf.acc_count, 1)
        if available is not None:
            available = max(available, 0)
        itype = InstanceType(name, curve.max_rate_rpm(), curve, cost, available, PriorityModel.CONSERVATIVE)
        answer = solve_pool([itype], classes, Policy.PRIORITY, time_limit_s)
        if answer.status == "INFEASIBLE":
            continue
        allocation = _allocation(server, itype, answer, batch, queue, available)
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


def size_pools(system: SystemData, limited: bool, time_limit_s: float) -> PoolSizing:
    """Every pool server of ``system`` in name order; with ``limited`` each takes its cards from what the
    capacity has left (module docstring)."""
    left = dict(system.capacity.counts) if limited else None
    allocations: dict[str, Allocation] = {}
    unallocated: dict[str, str] = {}
    used: dict[str, int] = {}
    for server in sorted((s for s in system.servers if is_pool(s)), key=lambda s: s.name):
        allocation, reason = size_pool(system, server, left, time_limit_s)
        if allocation is None:
            unallocated[server.name] = reason
            continue
        allocations[server.name] = allocation
        card_type, per = _cards(system, server, allocation.accelerator)
        used[card_type] = used.get(card_type, 0) + allocation.num_replicas * per
        if left is not None:
            left[card_type] = left.get(card_type, 0) - allocation.num_replicas * per
    return PoolSizing(allocations, unallocated, used)
