"""Closed-loop simulation of several classes sharing a pool (docs/model.md s13), in event time on the engine core.

A pool scenario (sim/scenarios/pools/*.yaml, e.g. seed000-two-phase) names one replica type (perfParms, vLLM's
max_num_seqs, token lengths), the classes in priority order with their mean end-to-end latency bounds (s), and
phases of per-class arrival rates (RPM). Three arms run on the same seeded arrivals:

- ``priority``: one pool; replicas run ``--scheduling-policy priority`` (requests carry their class's position),
  sized by the qos ILP under priority with the conservative latency model (Cobham's non-preemptive priority
  waiting time, pools.CobhamLatency); the router sends each class to the replicas by the answer's per-replica
  rates;
- ``priority-prefix``: the same pool sized with the seeds' prefix-conservation model (optimistic for lower
  classes), for comparison;
- ``fcfs``: one pool of FCFS replicas sized by the ILP's FCFS variant (same router);
- ``per-class``: one FCFS server per class (Inferno's default: a Deployment per class), each sized alone.

Every ``period_s`` the controller measures each class's arrival rate over the last ``window_s`` (the collector's
rate()), solves, and scales: new replicas serve after ``startup_s``; removed ones take no new requests and stop
when idle. The latency curve the ILP uses is our queueing model (model v1) of the replica, QueueingCurve.
GPU-hours integrate every replica from its start to its stop. Reported per arm: GPU-hours, and per class and
phase the mean and p90 end-to-end latency against the bound (the first ``settle_s`` of each phase excluded,
while the controller reacts).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field

import numpy as np
import yaml

from emulator.enginecore import EngineCore, EngineParams, Request
from services.core.errors import InvalidInputError
from services.core.model import PerfParms, ServiceModel
from services.optimizer.pools import (
    CobhamLatency,
    InstanceType,
    Policy,
    PriorityModel,
    QueueingCurve,
    ServiceClass,
    predicted_latency_s,
    solve_pool,
)
from services.perfmodel.servicetime import ReplicaModel

POOL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios", "pools")
ARMS = ("priority", "priority-prefix", "fcfs", "per-class")
MODEL_CHECK_HOURS = 24.0
"""Simulated hours per open-loop model check (at utilization ~0.85 a few hours leave the means noisy)."""


@dataclass(frozen=True)
class PoolScenario:
    """A pool scenario (module docstring); rates in RPM, times in s, perfParms in ms."""

    name: str
    description: str
    seed: int
    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    max_num_seqs: int
    prompt_tokens: int
    output_tokens_mean: int
    output_exponential: bool
    classes: tuple[tuple[str, float], ...]
    phases: tuple[tuple[float, tuple[float, ...]], ...]
    period_s: float = 60.0
    window_s: float = 120.0
    startup_s: float = 60.0
    settle_s: float = 300.0
    max_replicas: int = 16

    @property
    def duration_s(self) -> float:
        """Total simulated time."""
        return sum(d for d, _ in self.phases)


def is_pool_scenario(name_or_path: str) -> bool:
    """Whether ``name_or_path`` is a shipped pool scenario or a file with ``kind: pool``."""
    try:
        return _path(name_or_path) is not None
    except InvalidInputError:
        return False


def _path(name_or_path: str) -> str | None:
    if os.path.isfile(name_or_path):
        with open(name_or_path) as handle:
            doc = yaml.safe_load(handle)
        return name_or_path if isinstance(doc, dict) and doc.get("kind") == "pool" else None
    candidate = os.path.join(POOL_DIR, name_or_path + ".yaml")
    return candidate if os.path.isfile(candidate) else None


def load(name_or_path: str) -> PoolScenario:
    """A PoolScenario from a shipped name or a file; InvalidInputError naming the field on a bad one."""
    path = _path(name_or_path)
    if path is None:
        raise InvalidInputError(f"pool scenario {name_or_path!r}: not found (shipped: {', '.join(available())})")
    with open(path) as handle:
        doc = yaml.safe_load(handle)
    try:
        server, control = doc["server"], doc.get("control") or {}
        classes = tuple((str(c["name"]), float(c["latency_s"])) for c in doc["classes"])
        phases = tuple((float(p["duration_s"]), tuple(float(r) for r in p["rates_rpm"])) for p in doc["phases"])
        out = server["output_tokens"]
        sc = PoolScenario(
            doc.get("name", os.path.splitext(os.path.basename(path))[0]), str(doc.get("description", "")),
            int(doc.get("seed", 0)), float(server["perf"]["alpha"]), float(server["perf"]["beta"]),
            float(server["perf"]["gamma"]), int(server["max_num_seqs"]), int(server["prompt_tokens"]),
            int(out["mean"]), out.get("dist", "exponential") == "exponential", classes, phases,
            float(control.get("period_s", 60)), float(control.get("window_s", 120)),
            float(control.get("startup_s", 60)), float(control.get("settle_s", 300)),
            int(doc.get("max_replicas", 16)))
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInputError(f"pool scenario {path}: bad or missing field: {err}") from None
    if any(len(r) != len(classes) for _, r in phases):
        raise InvalidInputError(f"pool scenario {path}: phases[].rates_rpm need one rate per class")
    return sc


def available() -> list[str]:
    """The shipped pool scenarios."""
    if not os.path.isdir(POOL_DIR):
        return []
    return sorted(os.path.splitext(f)[0] for f in os.listdir(POOL_DIR) if f.endswith(".yaml"))


def instance_type(sc: PoolScenario, model: PriorityModel = PriorityModel.CONSERVATIVE) -> InstanceType:
    """The replica as the ILP sees it: our queueing model's latency curve, capacity its stable limit, the class
    latency under priority read by ``model``."""
    curve = QueueingCurve(ReplicaModel(PerfParms(sc.alpha_ms, sc.beta_ms, sc.gamma_ms), sc.prompt_tokens,
                                       sc.output_tokens_mean, sc.max_num_seqs, 100 * sc.max_num_seqs,
                                       ServiceModel.V1, out_c2=1.0 if sc.output_exponential else 0.0))
    return InstanceType("replica", curve.max_rate_rpm(), curve, 1.0, sc.max_replicas, model)


@dataclass
class _Slot:
    core: EngineCore
    group: str
    weights: list[float]
    started_s: float
    ready_s: float
    retired_s: float | None = None
    stopped_s: float | None = None
    last_s: float = 0.0


@dataclass
class ArmResult:
    """One arm: GPU-hours, replica count per control tick, per class and phase the latency stats (s)."""

    arm: str
    gpu_hours: float
    replicas: list[tuple[float, int]]
    latency: dict[tuple[str, int], dict[str, float]]
    unmet_ticks: int = 0
    requests: int = 0

    def within(self, bounds: dict[str, float]) -> bool:
        """Whether every class's mean latency in every phase is within its bound."""
        return all(v["mean_s"] <= bounds[c] for (c, _), v in self.latency.items() if v["count"])


@dataclass
class PoolRun:
    """All arms of one scenario."""

    scenario: PoolScenario
    seed: int
    arms: dict[str, ArmResult] = field(default_factory=dict)


def arrivals(sc: PoolScenario, seed: int) -> list[tuple[float, int, int, int]]:
    """Seeded Poisson arrivals (time s, class index, prompt tokens, output tokens), time-ordered."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, int, int, int]] = []
    start = 0.0
    for duration, rates in sc.phases:
        for c, rpm in enumerate(rates):
            count = rng.poisson(rpm / 60.0 * duration)
            for t in np.sort(rng.uniform(start, start + duration, count)):
                length = (max(int(rng.exponential(sc.output_tokens_mean)), 1) if sc.output_exponential
                          else sc.output_tokens_mean)
                out.append((float(t), c, sc.prompt_tokens, length))
        start += duration
    out.sort()
    return out


Wanted = list[tuple[str, list[float]]]


def _targets(sc: PoolScenario, arm: str, rates: list[float], itype: InstanceType) -> tuple[Wanted, bool]:
    """(group, per-class weights) per replica the arm wants at these rates, and whether demand is all met."""
    classes = [ServiceClass(n, max(r, 0.0), b) for (n, b), r in zip(sc.classes, rates, strict=True)]
    if arm == "per-class":
        wanted, met = [], True
        for c, cls in enumerate(classes):
            if cls.rate_rpm <= 0:
                wanted.append((cls.name, [1.0 if i == c else 0.0 for i in range(len(classes))]))
                continue
            ans = solve_pool([itype], [cls], Policy.FCFS)
            met = met and not any(ans.unmet_rpm)
            for _ in range(max(ans.count, 1)):
                wanted.append((cls.name, [1.0 if i == c else 0.0 for i in range(len(classes))]))
        return wanted, met
    ans = solve_pool([itype], classes, Policy.FCFS if arm == "fcfs" else Policy.PRIORITY)
    wanted = [("pool", list(r.rates_rpm)) for r in ans.instances] or [("pool", [1.0] * len(classes))]
    return wanted, not any(ans.unmet_rpm)


def run_arm(sc: PoolScenario, arm: str, seed: int) -> ArmResult:
    """Simulate one arm on the scenario's arrivals (module docstring)."""
    itype = instance_type(sc, PriorityModel.PREFIX if arm == "priority-prefix" else PriorityModel.CONSERVATIVE)
    policy = "priority" if arm.startswith("priority") else "fcfs"
    params = EngineParams(sc.alpha_ms, sc.beta_ms, sc.gamma_ms, max_num_seqs=sc.max_num_seqs,
                          scheduling_policy=policy)
    rng = random.Random(seed + 1)
    slots: list[_Slot] = []
    done: list[tuple[int, float, float]] = []  # (class, arrival_s, finished_s)
    requests: dict[int, int] = {}
    history: list[tuple[float, int]] = []
    unmet_ticks = 0

    def advance(t: float) -> None:
        for slot in slots:
            if slot.stopped_s is not None:
                continue
            for it in slot.core.advance_to(t):
                for r in it.finished:
                    done.append((requests.pop(id(r)), r.arrival_s, r.finished_s))
                    slot.last_s = max(slot.last_s, r.finished_s)
            if slot.retired_s is not None and not slot.core.has_work:
                slot.stopped_s = max(slot.retired_s, slot.last_s)  # drained: stops after its last request

    def apply(t: float, wanted: list[tuple[str, list[float]]], initial: bool) -> None:
        for group in {g for g, _ in wanted} | {s.group for s in slots}:
            want = [w for g, w in wanted if g == group]
            live = [s for s in slots if s.group == group and s.retired_s is None]
            live.sort(key=lambda s: s.ready_s)  # keep the ready ones
            for slot in live[len(want):]:
                slot.retired_s = t
            kept = sorted(live[:len(want)], key=lambda s: s.weights, reverse=True)
            want = sorted(want, reverse=True)  # a replica keeps a class mix like the one it had (FCFS groups)
            for slot, weights in zip(kept, want, strict=False):
                slot.weights = weights
            for weights in want[len(kept):]:
                ready = t if initial else t + sc.startup_s
                slots.append(_Slot(EngineCore(params), group, weights, t, ready))

    def route(t: float, c: int) -> _Slot:
        name = sc.classes[c][0]
        live = [s for s in slots if s.retired_s is None and s.ready_s <= t
                and (arm != "per-class" or s.group == name)]
        weighted = [s for s in live if s.weights[c] > 0]
        if weighted:
            total = sum(s.weights[c] for s in weighted)
            draw = rng.random() * total
            for slot in weighted:
                draw -= slot.weights[c]
                if draw < 0:
                    return slot
            return weighted[-1]
        if live:
            return live[rng.randrange(len(live))]
        pending = [s for s in slots if s.retired_s is None and (arm != "per-class" or s.group == name)]
        return min(pending or slots, key=lambda s: s.ready_s)

    events = arrivals(sc, seed)
    first = list(sc.phases[0][1])
    wanted, _ = _targets(sc, arm, first, itype)
    apply(0.0, wanted, initial=True)
    history.append((0.0, sum(1 for s in slots if s.retired_s is None)))
    seen: list[tuple[float, int]] = []
    tick = sc.period_s
    index = 0
    while index < len(events) or tick < sc.duration_s:
        next_arrival = events[index][0] if index < len(events) else math.inf
        if tick <= next_arrival and tick < sc.duration_s:
            advance(tick)
            span = min(sc.window_s, tick)
            rates = [sum(1 for at, cc in seen if cc == c and at >= tick - span) / span * 60.0
                     for c in range(len(sc.classes))]
            wanted, met = _targets(sc, arm, rates, itype)
            unmet_ticks += 0 if met else 1
            apply(tick, wanted, initial=False)
            history.append((tick, sum(1 for s in slots if s.retired_s is None)))
            seen = [(at, cc) for at, cc in seen if at >= tick - sc.window_s]
            tick += sc.period_s
            continue
        t, c, prompt, out = events[index]
        index += 1
        advance(t)
        slot = route(t, c)
        request = Request(prompt, out, priority=c)
        requests[id(request)] = c
        slot.core.add(request, max(t, slot.ready_s))
        seen.append((t, c))
    advance(math.inf)
    end = sc.duration_s
    gpu_s = 0.0
    for slot in slots:
        stop = slot.stopped_s if slot.stopped_s is not None else end
        if slot.retired_s is None:
            stop = max(end, stop)
        gpu_s += max(stop - slot.started_s, 0.0)
    return ArmResult(arm, gpu_s / 3600.0, history, _latency(sc, done), unmet_ticks, len(events))


def _latency(sc: PoolScenario, done: list[tuple[int, float, float]]) -> dict[tuple[str, int], dict[str, float]]:
    bounds, start = [], 0.0
    for duration, _ in sc.phases:
        bounds.append((start, start + duration))
        start += duration
    out: dict[tuple[str, int], dict[str, float]] = {}
    for c, (name, _) in enumerate(sc.classes):
        for p, (lo, hi) in enumerate(bounds):
            values = [f - a for cc, a, f in done if cc == c and lo + sc.settle_s <= a < hi]
            arr = np.asarray(values) if values else np.zeros(0)
            out[name, p] = {"count": len(values), "mean_s": float(arr.mean()) if values else 0.0,
                            "p90_s": float(np.percentile(arr, 90)) if values else 0.0}
    return out


def run(sc: PoolScenario, seed: int | None = None, arms: tuple[str, ...] = ARMS) -> PoolRun:
    """Every arm on the same arrivals."""
    chosen = sc.seed if seed is None else seed
    result = PoolRun(sc, chosen)
    for arm in arms:
        result.arms[arm] = run_arm(sc, arm, chosen)
    return result


def table(result: PoolRun) -> str:
    """The comparison as a Markdown table: GPU-hours (and saving against per-class servers), replicas per phase,
    and per class and phase the mean / p90 latency against the bound, with the verdict."""
    sc = result.scenario
    bounds = dict(sc.classes)
    base = result.arms.get("per-class")
    head = ["arm", "GPU-hours", "vs per-class"]
    starts = np.cumsum([0.0, *[d for d, _ in sc.phases]])
    for p in range(len(sc.phases)):
        head.append(f"replicas p{p + 1} (end)")
    for name, bound in sc.classes:
        for p in range(len(sc.phases)):
            head.append(f"{name} p{p + 1} mean/p90 s (<= {bound:g})")
    head.append("latency within bounds")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, res in result.arms.items():
        saving = "" if base is None else f"{(res.gpu_hours - base.gpu_hours) / base.gpu_hours:+.1%}"
        row = [arm, f"{res.gpu_hours:.2f}", saving]
        for p in range(len(sc.phases)):
            at = [n for t, n in res.replicas if t < starts[p + 1]]
            row.append(str(at[-1]) if at else "-")
        for name, _ in sc.classes:
            for p in range(len(sc.phases)):
                v = res.latency[name, p]
                row.append(f"{v['mean_s']:.2f} / {v['p90_s']:.2f}" if v["count"] else "-")
        row.append("yes" if res.within(bounds) else "NO")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def model_check(sc: PoolScenario, seed: int | None = None,
                hours: float = MODEL_CHECK_HOURS) -> list[dict[str, float | str]]:
    """Both priority latency models against the token-level engine. For each phase and each model (prefix,
    conservative), that model's answer's per-replica rates (its first replica) run open loop on one priority
    replica for ``hours`` of seeded Poisson arrivals; per class the simulated mean end-to-end latency beside
    the prediction of both models at those rates."""
    prefix_type = instance_type(sc, PriorityModel.PREFIX)
    cobham = CobhamLatency.of(prefix_type.curve, prefix_type.capacity_rpm)
    rng = np.random.default_rng(sc.seed if seed is None else seed)
    rows: list[dict[str, float | str]] = []
    for p, (_, rates) in enumerate(sc.phases):
        classes = [ServiceClass(n, r, b) for (n, b), r in zip(sc.classes, rates, strict=True)]
        for model in PriorityModel:
            answer = solve_pool([instance_type(sc, model)], classes, Policy.PRIORITY)
            per = answer.instances[0].rates_rpm
            simulated = _open_loop(sc, per, hours, rng)
            prefix, conservative = predicted_latency_s(prefix_type.curve, per, Policy.PRIORITY), cobham.latency_s(per)
            for c, (name, bound) in enumerate(sc.classes):
                values = simulated[c]
                rows.append({"phase": p + 1, "sized_by": model.value, "class": name, "rate_rpm": per[c],
                             "bound_s": bound, "replicas": answer.count,
                             "prefix_s": math.nan if prefix[c] is None else prefix[c],
                             "conservative_s": math.nan if conservative[c] is None else conservative[c],
                             "simulated_s": float(np.mean(values)) if values else math.nan,
                             "requests": len(values)})
    return rows


def _open_loop(sc: PoolScenario, per: tuple[float, ...], hours: float,
               rng: np.random.Generator) -> list[list[float]]:
    """Per class the end-to-end latencies (s) on one priority replica fed Poisson arrivals at ``per`` RPM."""
    core = EngineCore(EngineParams(sc.alpha_ms, sc.beta_ms, sc.gamma_ms, max_num_seqs=sc.max_num_seqs,
                                   scheduling_policy="priority"))
    arrivals_: list[tuple[float, int, int]] = []
    for c, rpm in enumerate(per):
        count = rng.poisson(rpm / 60.0 * hours * 3600)
        for t in rng.uniform(0, hours * 3600, count):
            out = (max(int(rng.exponential(sc.output_tokens_mean)), 1) if sc.output_exponential
                   else sc.output_tokens_mean)
            arrivals_.append((float(t), c, out))
    arrivals_.sort()
    finished: list[list[float]] = [[] for _ in per]
    owner: dict[int, int] = {}

    def collect(iterations: list) -> None:
        for it in iterations:
            for r in it.finished:
                finished[owner.pop(id(r))].append(r.finished_s - r.arrival_s)

    for t, c, out in arrivals_:
        collect(core.advance_to(t))
        request = core.add(Request(sc.prompt_tokens, out, priority=c), t)
        owner[id(request)] = c
    collect(core.advance_to(math.inf))
    return finished


def model_check_table(rows: list[dict[str, float | str]]) -> str:
    """model_check as a Markdown table."""
    lines = ["| phase | sized by | replicas | class | rate per replica RPM | predicted mean s (prefix) | "
             "predicted mean s (conservative) | simulated mean s | bound s | requests |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['phase']} | {r['sized_by']} | {r['replicas']} | {r['class']} | {r['rate_rpm']:.3f} | "
                     f"{r['prefix_s']:.2f} | {r['conservative_s']:.2f} | {r['simulated_s']:.2f} | "
                     f"{r['bound_s']:g} | {r['requests']} |")
    return "\n".join(lines)
