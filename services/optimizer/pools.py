"""Several service classes sharing one pool of replicas (docs/model.md s13): the priority-prefix ILP of the seeds'
multi-QoS work over instance types with aggregated replica counts, and its FCFS variant, solved with CP-SAT.

Priority (vLLM ``--scheduling-policy priority``; classes ordered most important first): X_ck >= 0 the rate of
class c on type k, n_k the replicas of type k,

    sum_k X_ck + U_c = Q_c                                   (demand; U_c unmet, 0 whenever the types allow)
    sum_{c' <= c} X_c'k <= rmax_k(L_c) n_k   for every c, k  (priority prefix: class c only waits for c' <= c)
    sum_c X_ck <= A_k n_k                                    (capacity of a replica)
    n_k <= available_k;  minimise sum_k cost_k n_k

FCFS: every class on a replica sees its whole load, so a replica's load must stay within rmax(L) of the tightest
class it carries. Replicas of type k are grouped by that class g (n_kg, capacity min(A_k, rmax_k(L_g))); class c
may ride on group g when rmax_k(L_c) >= rmax_k(L_g). Both forms are exact for their latency model; the router
splits X_ck evenly over the n_k replicas (X_ck / n_k each: the routing weights).

Rates in the model are integers, micro-requests per minute: caps rounded down, demand exact, so an answer never
exceeds a cap. Pure: OR-Tools and numpy, no I/O, no clock.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ortools.sat.python import cp_model

from services.core.errors import InvalidInputError
from services.optimizer.queueing import analyze_point
from services.optimizer.servicetime import ReplicaModel

UNITS_PER_RPM = 1_000_000
"""Integer rate units of the ILP: micro-requests per minute."""
COST_UNITS = 1000
"""Integer cost units: thousandths of an instance's cost."""
DEFAULT_TIME_LIMIT_S = 10.0


class Policy(enum.StrEnum):
    """How a replica orders the classes' requests: ``priority`` (vLLM's priority scheduling, non-preemptive,
    lower value first) or ``fcfs`` (arrival order)."""

    PRIORITY = "priority"
    FCFS = "fcfs"


class LatencyModel(Protocol):
    """A replica's latency (s) as a nondecreasing function of its arrival rate (RPM), and its inverse."""

    def latency_s(self, rate_rpm: float) -> float:
        """Latency at ``rate_rpm``; math.inf where the replica cannot keep up."""

    def rmax_rpm(self, latency_s: float) -> float:
        """The largest rate whose latency is <= ``latency_s`` (0 if none)."""


@dataclass(frozen=True)
class PiecewiseCurve:
    """Latency (s) vs rate (RPM), linear between ``points`` (rates strictly increasing, latencies nondecreasing);
    infinite beyond the last point. From data: measured points or piecewise-linear segments."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise InvalidInputError(f"curve.points: need at least 2 points, got {len(self.points)}")
        for i, (rate, lat) in enumerate(self.points):
            if not (math.isfinite(rate) and math.isfinite(lat) and rate >= 0 and lat >= 0):
                raise InvalidInputError(f"curve.points[{i}]: rate and latency must be finite and >= 0, got "
                                        f"{[rate, lat]}")
            if i and (rate <= self.points[i - 1][0] or lat < self.points[i - 1][1]):
                raise InvalidInputError(f"curve.points[{i}]: rates must increase and latencies not decrease, got "
                                        f"{list(self.points[i - 1])} then {[rate, lat]}")

    def latency_s(self, rate_rpm: float) -> float:
        """Linear interpolation; the first point's latency below it, inf beyond the last point."""
        rates = [p[0] for p in self.points]
        if rate_rpm <= rates[0]:
            return self.points[0][1]
        if rate_rpm > rates[-1]:
            return math.inf
        i = bisect.bisect_left(rates, rate_rpm)
        (r0, l0), (r1, l1) = self.points[i - 1], self.points[i]
        return l0 + (l1 - l0) * (rate_rpm - r0) / (r1 - r0)

    def rmax_rpm(self, latency_s: float) -> float:
        """The largest rate on the curve with latency <= ``latency_s``."""
        if latency_s < self.points[0][1]:
            return 0.0
        best = self.points[0][0]
        for (r0, l0), (r1, l1) in zip(self.points, self.points[1:], strict=False):
            if l1 <= latency_s:
                best = r1
                continue
            if l0 <= latency_s:
                best = r0 + (r1 - r0) * (latency_s - l0) / (l1 - l0)
            break
        return best


@dataclass(frozen=True)
class BatchedCurve:
    """T(r) = t0_s / (1 - r / lambda_rpm) (SOLVER.md s3's batched curve): rmax(L) = lambda (1 - t0 / L)."""

    t0_s: float
    lambda_rpm: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t0_s) and self.t0_s > 0):
            raise InvalidInputError(f"curve.batched.t0_s must be finite and > 0, got {self.t0_s!r}")
        if not (math.isfinite(self.lambda_rpm) and self.lambda_rpm > 0):
            raise InvalidInputError(f"curve.batched.lambda_rpm must be finite and > 0, got {self.lambda_rpm!r}")

    def latency_s(self, rate_rpm: float) -> float:
        """T0 / (1 - r / Lambda); inf at and beyond Lambda."""
        if rate_rpm >= self.lambda_rpm:
            return math.inf
        return self.t0_s / (1.0 - max(rate_rpm, 0.0) / self.lambda_rpm)

    def rmax_rpm(self, latency_s: float) -> float:
        """Lambda (1 - T0 / L), 0 when L < T0."""
        if latency_s < self.t0_s:
            return 0.0
        return self.lambda_rpm * (1.0 - self.t0_s / latency_s)


@dataclass(frozen=True)
class QueueingCurve:
    """Latency from our queueing model (docs/model.md s3-s4): a request's mean end-to-end time
    TTFT + ITL (K - 1) on one replica of ``replica`` at the given rate, inf at and beyond 0.999 mu(N).
    rmax by bisection (the curve is nondecreasing in the rate)."""

    replica: ReplicaModel

    def max_rate_rpm(self) -> float:
        """0.999 mu(N) in RPM: the stable limit of one replica."""
        return analyze_point(self.replica, 1e-9).max_rate_per_ms * 60_000.0

    def latency_s(self, rate_rpm: float) -> float:
        """Mean end-to-end latency (s) at ``rate_rpm``."""
        if rate_rpm >= self.max_rate_rpm():
            return math.inf
        point = analyze_point(self.replica, max(rate_rpm, 1e-9) / 60_000.0)
        return (point.ttft_ms + point.itl_ms * max(self.replica.out_tokens - 1.0, 0.0)) / 1000.0

    def rmax_rpm(self, latency_s: float) -> float:
        """Largest rate within ``latency_s`` to 1e-6 relative, by bisection."""
        low, high = 0.0, self.max_rate_rpm()
        if self.latency_s(low) > latency_s:
            return 0.0
        for _ in range(60):
            mid = 0.5 * (low + high)
            if self.latency_s(mid) <= latency_s:
                low = mid
            else:
                high = mid
            if high - low <= 1e-6 * max(high, 1e-9):
                break
        return low


@dataclass(frozen=True)
class InstanceType:
    """One kind of replica (accelerator, mode / batch size): ``capacity_rpm`` A, the most a replica takes;
    ``curve`` its latency vs its total (FCFS) or prefix (priority) rate; ``cost`` per replica; ``available``
    the most replicas of it (None: unlimited)."""

    name: str
    capacity_rpm: float
    curve: LatencyModel
    cost: float = 1.0
    available: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capacity_rpm) and self.capacity_rpm > 0):
            raise InvalidInputError(f"instance {self.name!r}: capacity_rpm must be finite and > 0, got "
                                    f"{self.capacity_rpm!r}")
        if not (math.isfinite(self.cost) and self.cost >= 0):
            raise InvalidInputError(f"instance {self.name!r}: cost must be finite and >= 0, got {self.cost!r}")
        if self.available is not None and self.available < 0:
            raise InvalidInputError(f"instance {self.name!r}: count must be >= 0, got {self.available!r}")

    def cap_rpm(self, latency_s: float) -> float:
        """min(A, rmax(L)): the most a replica takes while a class with bound ``latency_s`` keeps it."""
        return min(self.capacity_rpm, self.curve.rmax_rpm(latency_s))


@dataclass(frozen=True)
class ServiceClass:
    """One class of the pool: its arrival rate (RPM) and latency bound (s). Priority = position in the list."""

    name: str
    rate_rpm: float
    latency_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_rpm) and self.rate_rpm >= 0):
            raise InvalidInputError(f"class {self.name!r}: rate must be finite and >= 0, got {self.rate_rpm!r}")
        if not (self.latency_s > 0):
            raise InvalidInputError(f"class {self.name!r}: latency bound must be > 0 s, got {self.latency_s!r}")


@dataclass(frozen=True)
class Replica:
    """One replica of the answer: its type and the rate of each class routed to it (RPM, classes in priority
    order: the router's weights), and each class's predicted latency there (s; None where it gets no traffic)."""

    instance_type: str
    rates_rpm: tuple[float, ...]
    latency_s: tuple[float | None, ...]


@dataclass(frozen=True)
class PoolAnswer:
    """The pool's answer: ``status`` (OPTIMAL, FEASIBLE at the time limit, INFEASIBLE when nothing serves a
    class at all), ``replicas`` per type, the ``instances`` (one Replica each), each class's ``unmet_rpm`` (0 when
    demand is met) and worst predicted ``latency_s`` over the replicas serving it, the ``cost``."""

    policy: Policy
    status: str
    replicas: dict[str, int]
    instances: tuple[Replica, ...]
    unmet_rpm: tuple[float, ...]
    latency_s: tuple[float | None, ...]
    cost: float
    classes: tuple[ServiceClass, ...] = field(default=())

    @property
    def count(self) -> int:
        """Number of replicas."""
        return len(self.instances)


def _units(rpm: float) -> int:
    """Rate cap in integer units, rounded down (a hair of tolerance against float noise)."""
    return int(math.floor(rpm * UNITS_PER_RPM + 1e-6))


def _status(code: int) -> str:
    return {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE"}.get(code, "INFEASIBLE")


@dataclass
class _Model:
    """The CP-SAT model being built: per (type, group) replica variables and per (class, type, group) rates."""

    model: cp_model.CpModel
    replicas: dict[tuple[int, int], cp_model.IntVar]
    rates: dict[tuple[int, int, int], cp_model.IntVar]
    unmet: list[cp_model.IntVar]
    caps: dict[tuple[int, int], int]


def _build(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy) -> _Model:
    m = cp_model.CpModel()
    demand = [int(round(c.rate_rpm * UNITS_PER_RPM)) for c in classes]
    total = sum(demand)
    replicas: dict[tuple[int, int], cp_model.IntVar] = {}
    rates: dict[tuple[int, int, int], cp_model.IntVar] = {}
    caps: dict[tuple[int, int], int] = {}
    for k, t in enumerate(types):
        class_caps = [_units(t.cap_rpm(c.latency_s)) for c in classes]
        # groups: priority has one (g = -1); FCFS one per tightest class g
        groups = [-1] if policy == Policy.PRIORITY else [g for g in range(len(classes)) if class_caps[g] > 0]
        for g in groups:
            group_cap = _units(t.capacity_rpm) if g < 0 else class_caps[g]
            positive = [cap for cap in class_caps if cap > 0]
            if not positive:
                continue
            bound = math.ceil(total / min(positive)) + 1 if t.available is None else t.available
            replicas[k, g] = n = m.new_int_var(0, bound, f"n_{k}_{g}")
            caps[k, g] = group_cap
            carried = [c for c in range(len(classes)) if class_caps[c] > 0 and (g < 0 or class_caps[c] >= group_cap)]
            for c in carried:
                rates[c, k, g] = m.new_int_var(0, demand[c], f"x_{c}_{k}_{g}")
            m.add(sum(rates[c, k, g] for c in carried) <= group_cap * n)
            if g < 0:
                for c in carried:  # the priority prefix through class c
                    m.add(sum(rates[c2, k, g] for c2 in carried if c2 <= c) <= class_caps[c] * n)
        if t.available is not None:
            mine = [v for (k2, _), v in replicas.items() if k2 == k]
            if mine:
                m.add(sum(mine) <= t.available)
    unmet = []
    for c in range(len(classes)):
        u = m.new_int_var(0, demand[c], f"u_{c}")
        m.add(sum(v for (c2, _, _), v in rates.items() if c2 == c) + u == demand[c])
        unmet.append(u)
    return _Model(m, replicas, rates, unmet, caps)


def _solve(built: _Model, time_limit_s: float) -> tuple[cp_model.CpSolver, int]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    return solver, solver.solve(built.model)


def solve_pool(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy = Policy.PRIORITY,
               time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> PoolAnswer:
    """Size one pool: replicas per type and each class's rate per replica at the lowest cost.

    ``classes`` in priority order (most important first). Demand that the types cannot carry (too few
    ``available`` replicas, or no type meets a class's bound) is left unmet, the most important classes served
    first (one lexicographic stage per class), then cost minimised. Raises InvalidInputError on an empty
    list of types or classes.
    """
    if not types:
        raise InvalidInputError("instances: need at least one instance type")
    if not classes:
        raise InvalidInputError("request_rates: need at least one class")
    built = _build(types, classes, policy)
    status = cp_model.OPTIMAL
    # serve the classes lexicographically by priority, then minimise cost
    for u in built.unmet:
        built.model.minimize(u)
        solver, status = _solve(built, time_limit_s)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return _empty(types, classes, policy, _status(status))
        built.model.add(u <= solver.value(u))
    costs = {k: int(round(t.cost * COST_UNITS)) for k, t in enumerate(types)}
    built.model.minimize(sum(costs[k] * v for (k, _), v in built.replicas.items()))
    solver, final = _solve(built, time_limit_s)
    if final not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _empty(types, classes, policy, _status(final))
    if status == cp_model.FEASIBLE:
        final = cp_model.FEASIBLE
    return _answer(built, solver, types, classes, policy, _status(final))


def _empty(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy, status: str) -> PoolAnswer:
    return PoolAnswer(policy, status, {t.name: 0 for t in types}, (), tuple(c.rate_rpm for c in classes),
                      tuple(None for _ in classes), 0.0, tuple(classes))


def predicted_latency_s(curve: LatencyModel, rates_rpm: Sequence[float], policy: Policy) -> tuple[float | None, ...]:
    """Each class's latency on one replica carrying ``rates_rpm`` (priority order): under priority the curve at
    the prefix rate through the class (prefix conservation, docs/model.md s13), under FCFS at the total; None for
    a class without traffic there."""
    out: list[float | None] = []
    prefix = 0.0
    total = sum(rates_rpm)
    for rate in rates_rpm:
        prefix += rate
        if rate <= 0:
            out.append(None)
        else:
            out.append(curve.latency_s(prefix if policy == Policy.PRIORITY else total))
    return tuple(out)


def _answer(built: _Model, solver: cp_model.CpSolver, types: Sequence[InstanceType],
            classes: Sequence[ServiceClass], policy: Policy, status: str) -> PoolAnswer:
    replicas = {t.name: 0 for t in types}
    instances: list[Replica] = []
    cost = 0.0
    for (k, g), var in sorted(built.replicas.items()):
        n = solver.value(var)
        if n == 0:
            continue
        replicas[types[k].name] += n
        cost += n * types[k].cost
        per = tuple(solver.value(built.rates[c, k, g]) / n / UNITS_PER_RPM if (c, k, g) in built.rates else 0.0
                    for c in range(len(classes)))
        lat = predicted_latency_s(types[k].curve, per, policy)
        instances.extend(Replica(types[k].name, per, lat) for _ in range(n))
    unmet = tuple(solver.value(u) / UNITS_PER_RPM for u in built.unmet)
    worst: list[float | None] = []
    for c in range(len(classes)):
        seen = [r.latency_s[c] for r in instances if r.latency_s[c] is not None]
        worst.append(max(seen) if seen else None)
    return PoolAnswer(policy, status, replicas, tuple(instances), unmet, tuple(worst), cost, tuple(classes))
