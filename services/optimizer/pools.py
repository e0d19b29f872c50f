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

Class latency under priority (PriorityModel, docs/model.md s13): ``prefix`` reads rmax_k(L_c) off the curve at the
prefix rate (the seeds' conservation form, exact for the prefix's mean, optimistic for each lower class);
``conservative`` is the non-preemptive priority waiting time of Cobham (1954) applied to the replica's FCFS curve
(CobhamLatency), which also charges each class the residual work of lower-class requests in service and the
higher-class arrivals during its wait. Its caps depend on the replica's total load, so the ILP is solved with
caps computed from a guess of each type's per-replica load and higher-class share, re-solved with the realised
values until the answer lies within its guesses (then every class's predicted latency is within its bound), and
after MAX_GUESS_ROUNDS with the worst case (load at capacity, higher classes at their caps).

Rates in the model are integers, micro-requests per minute: caps rounded down, demand exact, so an answer never
exceeds a cap. Pure: OR-Tools and numpy, no I/O, no clock.
"""

from __future__ import annotations

import bisect
import enum
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from ortools.sat.python import cp_model

from services.core.errors import InvalidInputError
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import ReplicaModel

UNITS_PER_RPM = 1_000_000
"""Integer rate units of the ILP: micro-requests per minute."""
COST_UNITS = 1000
"""Integer cost units: thousandths of an instance's cost."""
DEFAULT_TIME_LIMIT_S = 10.0
MAX_GUESS_ROUNDS = 6
"""Re-solves of the conservative model with realised loads as guesses before it falls back to the worst case."""
GRID_POINTS = 256
"""Rates at which CobhamLatency tabulates a replica's in-service time and residual work."""


class Policy(enum.StrEnum):
    """How a replica orders the classes' requests: ``priority`` (vLLM's priority scheduling, non-preemptive,
    lower value first) or ``fcfs`` (arrival order)."""

    PRIORITY = "priority"
    FCFS = "fcfs"


class PriorityModel(enum.StrEnum):
    """Which latency a class has on a priority replica: ``prefix`` (the curve at the prefix rate of the classes
    at least as important: the seeds' form) or ``conservative`` (Cobham's non-preemptive priority waiting time
    on the replica's FCFS curve, CobhamLatency)."""

    PREFIX = "prefix"
    CONSERVATIVE = "conservative"


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

    def limit_rpm(self) -> float:
        """Lambda: the rate at which the latency diverges."""
        return self.lambda_rpm

    def split_s(self, rate_rpm: float) -> tuple[float, float]:
        """(in service, waiting) in s at ``rate_rpm``: T0 in service (M/G/1 reading of the curve), the rest waiting."""
        return self.t0_s, self.latency_s(rate_rpm) - self.t0_s


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

    def limit_rpm(self) -> float:
        """mu(N) in RPM: the replica's largest throughput, where its latency diverges."""
        return self.max_rate_rpm() / 0.999

    def split_s(self, rate_rpm: float) -> tuple[float, float]:
        """(in service, waiting) in s at ``rate_rpm``: the model's wait before the first iteration, and the rest of
        the mean end-to-end latency (prefill, decode at the batch's ITL); (inf, inf) at and beyond 0.999 mu(N)."""
        if rate_rpm >= self.max_rate_rpm():
            return math.inf, math.inf
        point = analyze_point(self.replica, max(rate_rpm, 1e-9) / 60_000.0)
        total = (point.ttft_ms + point.itl_ms * max(self.replica.out_tokens - 1.0, 0.0)) / 1000.0
        return total - point.wait_ms / 1000.0, point.wait_ms / 1000.0

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


class SplitCurve(Protocol):
    """A latency curve that knows its stable limit and splits its latency into time in service and waiting."""

    def limit_rpm(self) -> float:
        """The rate (RPM) at which the replica's latency diverges (its largest throughput mu)."""

    def split_s(self, rate_rpm: float) -> tuple[float, float]:
        """(in service, waiting) in s at ``rate_rpm`` under FCFS."""


@dataclass(frozen=True)
class CobhamLatency:
    """Each class's mean latency on a replica with non-preemptive priority scheduling, from its FCFS curve.

    Source: Cobham (1954), "Priority assignment in waiting line problems"; Kleinrock, Queueing Systems vol. 2,
    s3.6. With classes of one service-time distribution, class c waits W_c = R / ((1 - s_{c-1})(1 - s_c)), R the
    mean residual work found in service (every class's, the lower ones' too: non-preemptive), s_c the load of
    classes 1..c. For M/G/1, R = W_fcfs(L) (1 - rho) at the total rate L; for M/M/c with one rate the same
    reweighting of Erlang C's FCFS wait holds. The batch-server approximation applies it to any replica: with
    the curve's split into in service S(L) and waiting W_fcfs(L) at the total rate L, mu its stable limit,
    rho = L / mu, s_c = (r_1 + ... + r_c) / mu,

        T_c = S(L) + W_fcfs(L) (1 - rho) / ((1 - s_{c-1}) (1 - s_c)).

    S and R = W_fcfs (1 - rho) are tabulated on GRID_POINTS rates from 0 to min(capacity, mu) as running maxima
    and read at the grid point at or above the rate, so both are nondecreasing and never below the curve's own
    values: the prediction is at least the prefix form's for every class. Assumes what the curve assumes (one
    service-time distribution for all classes, Poisson arrivals); the in-service time of a batch server is
    charged at the total load, since a batch mixes the classes.
    """

    rates_rpm: np.ndarray
    service_s: np.ndarray
    residual_s: np.ndarray
    mu_rpm: float

    @classmethod
    def of(cls, curve: LatencyModel, capacity_rpm: float) -> CobhamLatency:
        """Tabulate ``curve`` up to ``capacity_rpm``. InvalidInputError for a curve given only as points or
        segments (it has no stable limit and no split into service and waiting: use the prefix model)."""
        if not (hasattr(curve, "split_s") and hasattr(curve, "limit_rpm")):
            raise InvalidInputError(f"priority_model conservative needs a curve with a stable limit (batched or "
                                    f"perfParms), got {type(curve).__name__}; use priority_model prefix")
        split: SplitCurve = curve  # type: ignore[assignment]
        mu = split.limit_rpm()
        top = min(capacity_rpm, mu)
        rates = np.linspace(0.0, top, GRID_POINTS)
        service, residual = [], []
        for rate in rates:
            at = min(rate, 0.998 * mu)
            in_service, waiting = split.split_s(at)
            service.append(in_service)
            residual.append(waiting * (1.0 - at / mu))
        return cls(rates, np.maximum.accumulate(service), np.maximum.accumulate(residual), mu)

    def _at(self, table: np.ndarray, rate_rpm: float) -> float:
        if rate_rpm > self.rates_rpm[-1] * (1 + 1e-9):
            return math.inf
        index = int(np.searchsorted(self.rates_rpm, rate_rpm - 1e-9 * self.rates_rpm[-1]))
        return float(table[min(index, len(table) - 1)])

    def latency_s(self, rates_rpm: Sequence[float]) -> tuple[float | None, ...]:
        """T_c (s) per class on one replica carrying ``rates_rpm`` (priority order); None for a class without
        traffic there, inf where the replica cannot keep up."""
        total = sum(rates_rpm)
        service, residual = self._at(self.service_s, total), self._at(self.residual_s, total)
        out: list[float | None] = []
        before = 0.0
        for rate in rates_rpm:
            through = before + rate
            if rate <= 0:
                out.append(None)
            elif through >= self.mu_rpm or not math.isfinite(service):
                out.append(math.inf)
            else:
                out.append(service + residual / ((1.0 - before / self.mu_rpm) * (1.0 - through / self.mu_rpm)))
            before = through
        return tuple(out)

    def prefix_cap_rpm(self, latency_s: float, load_rpm: float, above_rpm: float) -> float:
        """The largest prefix rate P (RPM, classes 1..c on a replica) keeping T_c <= ``latency_s`` when the
        replica's total rate is at most max(``load_rpm``, P) and classes 1..c-1 carry at most ``above_rpm``
        (0 when nothing is above); 0 when none does. Bisection, 1e-9 relative."""

        def latency(prefix: float) -> float:
            load = max(load_rpm, prefix)
            if prefix >= self.mu_rpm or above_rpm >= self.mu_rpm:
                return math.inf
            return self._at(self.service_s, load) + self._at(self.residual_s, load) / (
                (1.0 - above_rpm / self.mu_rpm) * (1.0 - prefix / self.mu_rpm))

        low, high = 0.0, float(self.rates_rpm[-1])
        if latency(low) > latency_s:
            return 0.0
        if latency(high) <= latency_s:
            return high
        for _ in range(100):
            mid = 0.5 * (low + high)
            if latency(mid) <= latency_s:
                low = mid
            else:
                high = mid
            if high - low <= 1e-9 * high:
                break
        return low


@dataclass(frozen=True)
class InstanceType:
    """One kind of replica (accelerator, mode / batch size): ``capacity_rpm`` A, the most a replica takes;
    ``curve`` its latency vs its total (FCFS) or prefix (priority) rate; ``cost`` per replica; ``available``
    the most replicas of it (None: unlimited); ``priority_model`` how a class's latency under priority is read
    from the curve (PriorityModel)."""

    name: str
    capacity_rpm: float
    curve: LatencyModel
    cost: float = 1.0
    available: int | None = None
    priority_model: PriorityModel = PriorityModel.PREFIX

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

    @functools.cached_property
    def cobham(self) -> CobhamLatency:
        """The conservative model's table for this type (CobhamLatency.of), built once per instance."""
        return CobhamLatency.of(self.curve, self.capacity_rpm)

    def priority_latency(self, rates_rpm: Sequence[float]) -> tuple[float | None, ...]:
        """Each class's predicted latency (s) on one priority replica of this type carrying ``rates_rpm``
        (priority order) under the type's priority model; None for a class without traffic there."""
        if self.priority_model == PriorityModel.CONSERVATIVE:
            return self.cobham.latency_s(rates_rpm)
        return predicted_latency_s(self.curve, rates_rpm, Policy.PRIORITY)


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


def _build(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy,
           caps_rpm: Sequence[Sequence[float]]) -> _Model:
    """The CP-SAT model with ``caps_rpm[k][c]``: the prefix cap of class c on type k (priority) or the most a
    replica of type k may carry while class c rides on it (FCFS)."""
    m = cp_model.CpModel()
    demand = [int(round(c.rate_rpm * UNITS_PER_RPM)) for c in classes]
    total = sum(demand)
    replicas: dict[tuple[int, int], cp_model.IntVar] = {}
    rates: dict[tuple[int, int, int], cp_model.IntVar] = {}
    caps: dict[tuple[int, int], int] = {}
    for k, t in enumerate(types):
        class_caps = [_units(min(t.capacity_rpm, cap)) for cap in caps_rpm[k]]
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
    first (one lexicographic stage per class), then cost minimised. Types with the ``conservative`` priority
    model are re-solved on guessed loads (module docstring): the answer then keeps every class within its bound
    under CobhamLatency, at the lowest cost for its final caps (not necessarily the lowest under that model).
    Raises InvalidInputError on an empty list of types or classes, or a conservative type whose curve cannot
    give it.
    """
    if not types:
        raise InvalidInputError("instances: need at least one instance type")
    if not classes:
        raise InvalidInputError("request_rates: need at least one class")
    cobham = {k: t.cobham for k, t in enumerate(types)
              if policy == Policy.PRIORITY and t.priority_model == PriorityModel.CONSERVATIVE}
    prefix = [[t.cap_rpm(c.latency_s) for c in classes] for t in types]
    if not cobham:
        return _solve_caps(types, classes, policy, prefix, {}, time_limit_s)
    guesses = {k: [0.0] * (len(classes) + 1) for k in cobham}  # per type: load, then the rate above each class
    for _ in range(MAX_GUESS_ROUNDS):
        answer = _solve_caps(types, classes, policy, _guessed_caps(prefix, classes, cobham, guesses), cobham,
                             time_limit_s)
        realised = _realised(answer, types, cobham)
        if all(v <= g * (1 + 1e-9) + 1e-9 for k in cobham for v, g in zip(realised[k], guesses[k], strict=True)):
            return answer
        guesses = {k: [max(v, g) for v, g in zip(realised[k], guesses[k], strict=True)] for k in cobham}
    worst = {k: [types[k].capacity_rpm] + [0.0] * len(classes) for k in cobham}
    caps = _guessed_caps(prefix, classes, cobham, worst)
    for k in cobham:  # classes above c carry at most the cap of c - 1
        for c in range(1, len(classes)):
            worst[k][c + 1] = caps[k][c - 1]
            caps[k][c] = min(prefix[k][c], cobham[k].prefix_cap_rpm(classes[c].latency_s, worst[k][0],
                                                                    worst[k][c + 1]))
    return _solve_caps(types, classes, policy, caps, cobham, time_limit_s)


def _guessed_caps(prefix: list[list[float]], classes: Sequence[ServiceClass], cobham: dict[int, CobhamLatency],
                  guesses: dict[int, list[float]]) -> list[list[float]]:
    caps = [list(row) for row in prefix]
    for k, model in cobham.items():
        load, above = guesses[k][0], guesses[k][1:]
        caps[k] = [model.prefix_cap_rpm(c.latency_s, load, above[i]) for i, c in enumerate(classes)]
    return caps


def _realised(answer: PoolAnswer, types: Sequence[InstanceType],
              cobham: dict[int, CobhamLatency]) -> dict[int, list[float]]:
    """Per conservative type: the largest per-replica load and rate above each class in the answer."""
    out = {k: [0.0] * (len(answer.classes) + 1) for k in cobham}
    index = {t.name: k for k, t in enumerate(types)}
    for rep in answer.instances:
        k = index[rep.instance_type]
        if k not in out:
            continue
        values = [sum(rep.rates_rpm)] + [sum(rep.rates_rpm[:c]) for c in range(len(rep.rates_rpm))]
        out[k] = [max(a, b) for a, b in zip(out[k], values, strict=True)]
    return out


def _solve_caps(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy,
                caps_rpm: Sequence[Sequence[float]], cobham: dict[int, CobhamLatency],
                time_limit_s: float) -> PoolAnswer:
    built = _build(types, classes, policy, caps_rpm)
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
    return _answer(built, solver, types, classes, policy, _status(final), cobham)


def _empty(types: Sequence[InstanceType], classes: Sequence[ServiceClass], policy: Policy, status: str) -> PoolAnswer:
    return PoolAnswer(policy, status, {t.name: 0 for t in types}, (), tuple(c.rate_rpm for c in classes),
                      tuple(None for _ in classes), 0.0, tuple(classes))


def predicted_latency_s(curve: LatencyModel, rates_rpm: Sequence[float], policy: Policy) -> tuple[float | None, ...]:
    """Each class's latency on one replica carrying ``rates_rpm`` (priority order) in the prefix model: under
    priority the curve at the prefix rate through the class (prefix conservation, docs/model.md s13), under FCFS
    at the total; None for a class without traffic there. CobhamLatency.latency_s gives the conservative one."""
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
            classes: Sequence[ServiceClass], policy: Policy, status: str,
            cobham: dict[int, CobhamLatency]) -> PoolAnswer:
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
        lat = cobham[k].latency_s(per) if k in cobham else predicted_latency_s(types[k].curve, per, policy)
        instances.extend(Replica(types[k].name, per, lat) for _ in range(n))
    unmet = tuple(solver.value(u) / UNITS_PER_RPM for u in built.unmet)
    worst: list[float | None] = []
    for c in range(len(classes)):
        seen = [r.latency_s[c] for r in instances if r.latency_s[c] is not None]
        worst.append(max(seen) if seen else None)
    return PoolAnswer(policy, status, replicas, tuple(instances), unmet, tuple(worst), cost, tuple(classes))
