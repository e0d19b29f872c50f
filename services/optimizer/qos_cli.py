"""`python -m services.optimizer qos`: the seeds' multi-QoS experiments, one pool sized per update of an update
schedule (docs/model.md s13), with priority scheduling or FCFS."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

from services.core import datafiles
from services.core.errors import DataFileError, InvalidInputError
from services.core.model import PerfParms, ServiceModel
from services.optimizer.pools import (
    DEFAULT_TIME_LIMIT_S,
    BatchedCurve,
    InstanceType,
    LatencyModel,
    PiecewiseCurve,
    Policy,
    PoolAnswer,
    PriorityModel,
    QueueingCurve,
    ServiceClass,
    solve_pool,
)
from services.perfmodel.servicetime import ReplicaModel

DESCRIPTION = """Size one pool of replicas shared by several service classes, for every update of a schedule.

--updates FILE: the seeds' format, {"updates": [{"time": 0, "request_rates": [10, 14], "latencies": [10, 40]}, ...]},
classes in priority order (most important first), rates in RPM, latency bounds in seconds; optional top-level
"classes": ["Alan", "Noel"] names them.
--instances FILE: {"instances": [{"name": "mode2", "capacity_rpm": 12, "count": 8, "cost": 1, "curve": ...}]}
where count (optional) is how many replicas of the type exist, cost (default 1) is per replica, and the latency
(s) vs rate (RPM) curve of one replica is one of
  {"points": [[rate_rpm, latency_s], ...]}                               linear between points
  {"segments": [{"from_rpm": 0, "to_rpm": 6, "intercept_s": 2, "slope_s_per_rpm": 1.5}, ...]}  contiguous
  {"batched": {"t0_s": 150, "lambda_rpm": 25}}                           T(r) = t0 / (1 - r / lambda)
or, instead of "curve", our queueing model: "perfParms": {"alpha": ms, "beta": ms, "gamma": ms},
"in_tokens", "out_tokens", "max_batch", optionally "out_tokens_c2" (0 fixed, 1 exponential lengths) and
"max_queue" (default 100 x max_batch: vLLM's queue has no limit, so the model's must not cut the latency near
saturation); capacity_rpm then defaults to the replica's stable limit.
Priority: "priority_model" per instance type says how a class's latency is read from the curve: "prefix" (the
curve at the rate of classes 1..c on the replica: prefix conservation, the seeds' form; the default for a
"curve") or "conservative" (Cobham's non-preemptive priority wait on the curve, which also counts the residual
work of lower classes in service; the default for perfParms, needs perfParms or a batched curve).
FCFS: the curve at the replica's total rate. Output per update: status, number of instances, each instance's rate per
class (the router's weights); --json prints a list of {time, status, instances, rates_rpm, ...}."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``qos`` subcommand on the optimizer CLI's subparsers."""
    cmd = sub.add_parser("qos", help="size a pool shared by several classes (priority or FCFS) per update",
                         description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("--instances", required=True, metavar="FILE", help="instance types (see above)")
    cmd.add_argument("--updates", required=True, metavar="FILE", help="the update schedule (see above)")
    cmd.add_argument("--policy", choices=[p.value for p in Policy], default=Policy.PRIORITY.value,
                     help="scheduling policy of the replicas (default: %(default)s)")
    cmd.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, dest="time_limit_s",
                     metavar="SECONDS", help="CP-SAT time limit per solve (default: %(default)s)")
    cmd.add_argument("--json", action="store_true", help="print a JSON list, one object per update")


def _read(path: str, what: str) -> Any:
    try:
        return datafiles.read_json(path)
    except DataFileError as err:
        raise InvalidInputError(f"{what} {path!r}: {err}") from None


def _number(obj: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{where}.{key}: expected a finite number, got {value!r}")
    return float(value)


def _curve(spec: Any, where: str) -> LatencyModel:
    try:
        return _curve_of(spec, where)
    except InvalidInputError as err:
        if str(err).startswith(where):
            raise
        raise InvalidInputError(f"{where}: {err}") from None


def _curve_of(spec: Any, where: str) -> LatencyModel:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise InvalidInputError(f"{where}: expected one of points, segments, batched, got {spec!r}")
    kind, body = next(iter(spec.items()))
    if kind == "points":
        if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
            raise InvalidInputError(f"{where}.points: expected [[rate_rpm, latency_s], ...], got {body!r}")
        return PiecewiseCurve(tuple((_number({"r": p[0]}, "r", where), _number({"l": p[1]}, "l", where))
                                    for p in body))
    if kind == "segments":
        if not isinstance(body, list) or not body:
            raise InvalidInputError(f"{where}.segments: expected a non-empty list, got {body!r}")
        points: list[tuple[float, float]] = []
        for i, seg in enumerate(body):
            at = f"{where}.segments[{i}]"
            if not isinstance(seg, dict):
                raise InvalidInputError(f"{at}: expected an object, got {seg!r}")
            lo, hi = _number(seg, "from_rpm", at), _number(seg, "to_rpm", at)
            c, s = _number(seg, "intercept_s", at), _number(seg, "slope_s_per_rpm", at)
            start = (lo, c + s * lo)
            if points and (abs(points[-1][0] - lo) > 1e-9 or abs(points[-1][1] - start[1]) > 1e-6):
                raise InvalidInputError(f"{at}: must start where the previous segment ends "
                                        f"({points[-1][0]:g} RPM, {points[-1][1]:g} s), got ({lo:g}, {start[1]:g})")
            if not points:
                points.append(start)
            points.append((hi, c + s * hi))
        return PiecewiseCurve(tuple(points))
    if kind == "batched":
        if not isinstance(body, dict):
            raise InvalidInputError(f"{where}.batched: expected an object, got {body!r}")
        return BatchedCurve(_number(body, "t0_s", f"{where}.batched"), _number(body, "lambda_rpm", f"{where}.batched"))
    raise InvalidInputError(f"{where}: unknown curve kind {kind!r} (points, segments, batched)")


def _queueing(spec: Mapping[str, Any], where: str) -> QueueingCurve:
    perf = spec["perfParms"]
    if not isinstance(perf, dict):
        raise InvalidInputError(f"{where}.perfParms: expected an object, got {perf!r}")
    parms = PerfParms(*(_number(perf, key, f"{where}.perfParms") for key in ("alpha", "beta", "gamma")))
    if min(parms.alpha_ms, parms.beta_ms, parms.gamma_ms) < 0:
        raise InvalidInputError(f"{where}.perfParms: alpha, beta, gamma must be >= 0, got {perf!r}")
    in_tokens, out_tokens = _number(spec, "in_tokens", where), _number(spec, "out_tokens", where)
    batch = spec.get("max_batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidInputError(f"{where}.max_batch: expected an integer >= 1, got {batch!r}")
    if in_tokens < 0 or out_tokens < 1:
        raise InvalidInputError(f"{where}: in_tokens must be >= 0 and out_tokens >= 1, got {in_tokens}, {out_tokens}")
    queue = spec.get("max_queue", 100 * batch)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 0:
        raise InvalidInputError(f"{where}.max_queue: expected an integer >= 0, got {queue!r}")
    out_c2 = _number(spec, "out_tokens_c2", where, default=0.0)
    if out_c2 < 0:
        raise InvalidInputError(f"{where}.out_tokens_c2: expected a number >= 0, got {out_c2}")
    return QueueingCurve(ReplicaModel(parms, in_tokens, out_tokens, batch, queue, ServiceModel.V1, out_c2=out_c2))


def load_instances(path: str) -> list[InstanceType]:
    """The instance types of ``path`` (format in DESCRIPTION). InvalidInputError names the field at fault."""
    data = _read(path, "--instances")
    items = data.get("instances") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InvalidInputError(f"--instances {path!r}: expected a non-empty list 'instances', got {items!r}")
    types: list[InstanceType] = []
    for i, spec in enumerate(items):
        where = f"instances[{i}]"
        if not isinstance(spec, dict):
            raise InvalidInputError(f"{where}: expected an object, got {spec!r}")
        name = spec.get("name", f"type{i}")
        if "curve" in spec:
            curve: LatencyModel = _curve(spec["curve"], f"{where}.curve")
            capacity = _number(spec, "capacity_rpm", where)
            model = PriorityModel.PREFIX
        elif "perfParms" in spec:
            curve = _queueing(spec, where)
            capacity = _number(spec, "capacity_rpm", where, default=curve.max_rate_rpm())
            model = PriorityModel.CONSERVATIVE
        else:
            raise InvalidInputError(f"{where}: needs a 'curve' or 'perfParms'")
        chosen = spec.get("priority_model", model.value)
        if chosen not in [m.value for m in PriorityModel]:
            raise InvalidInputError(f"{where}.priority_model: expected one of "
                                    f"{', '.join(m.value for m in PriorityModel)}, got {chosen!r}")
        if chosen == PriorityModel.CONSERVATIVE and not hasattr(curve, "split_s"):
            raise InvalidInputError(f"{where}.priority_model: conservative needs perfParms or a batched curve, "
                                    f"got a curve of points or segments")
        count = spec.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise InvalidInputError(f"{where}.count: expected an integer >= 0, got {count!r}")
        types.append(InstanceType(str(name), capacity, curve, _number(spec, "cost", where, default=1.0), count,
                                  PriorityModel(chosen)))
    if len({t.name for t in types}) != len(types):
        raise InvalidInputError(f"--instances {path!r}: instance names must be unique")
    return types


def load_updates(path: str) -> list[tuple[float, list[ServiceClass]]]:
    """The schedule of ``path``: (time, classes in priority order) per update."""
    data = _read(path, "--updates")
    updates = data.get("updates") if isinstance(data, dict) else None
    if not isinstance(updates, list) or not updates:
        raise InvalidInputError(f"--updates {path!r}: expected a non-empty list 'updates'")
    names = data.get("classes")
    out: list[tuple[float, list[ServiceClass]]] = []
    for i, upd in enumerate(updates):
        where = f"updates[{i}]"
        if not isinstance(upd, dict):
            raise InvalidInputError(f"{where}: expected an object, got {upd!r}")
        rates, lats = upd.get("request_rates"), upd.get("latencies")
        if not isinstance(rates, list) or not isinstance(lats, list) or len(rates) != len(lats) or not rates:
            raise InvalidInputError(f"{where}: request_rates and latencies must be non-empty lists of one length, "
                                    f"got {rates!r} and {lats!r}")
        if names is not None and (not isinstance(names, list) or len(names) != len(rates)):
            raise InvalidInputError(f"classes: expected {len(rates)} names, got {names!r}")
        classes = [ServiceClass(str(names[c]) if names else f"class{c + 1}",
                                _number({"r": rates[c]}, "r", f"{where}.request_rates[{c}]"),
                                _number({"l": lats[c]}, "l", f"{where}.latencies[{c}]"))
                   for c in range(len(rates))]
        out.append((_number(upd, "time", where, default=0.0), classes))
    return out


def answer_json(time: float, answer: PoolAnswer) -> dict[str, Any]:
    """One update's answer: time, status, instances (count), rates_rpm (per instance, per class), and the detail
    (policy, replicas per type, instance_types, latency_s per instance and worst per class, unmet_rpm, cost)."""
    return {"time": time, "status": answer.status, "instances": answer.count,
            "rates_rpm": [list(r.rates_rpm) for r in answer.instances],
            "policy": answer.policy.value, "replicas": answer.replicas,
            "instance_types": [r.instance_type for r in answer.instances],
            "instance_latency_s": [list(r.latency_s) for r in answer.instances],
            "classes": [c.name for c in answer.classes], "demand_rpm": [c.rate_rpm for c in answer.classes],
            "latency_bound_s": [c.latency_s for c in answer.classes],
            "latency_s": list(answer.latency_s), "unmet_rpm": list(answer.unmet_rpm), "cost": answer.cost}


def answer_text(time: float, answer: PoolAnswer) -> str:
    """One update as the seeds' log: status, instance count, each instance's rate per class."""
    names = [c.name for c in answer.classes]
    demand = ", ".join(f"{c.name} {c.rate_rpm:g} RPM <= {c.latency_s:g} s" for c in answer.classes)
    lines = [f"time {time:g}: {answer.status}, {answer.count} instances ({answer.policy.value}); {demand}"]
    for i, rep in enumerate(answer.instances):
        cells = ", ".join(f"{n} {r:.6f}" for n, r in zip(names, rep.rates_rpm, strict=True))
        lines.append(f"  instance {i} ({rep.instance_type}): {cells} RPM")
    lat = ", ".join(f"{n} {'-' if v is None else f'{v:.3f}'} s" for n, v in zip(names, answer.latency_s, strict=True))
    lines.append(f"  predicted worst latency: {lat}")
    if any(u > 0 for u in answer.unmet_rpm):
        lines.append("  UNMET: " + ", ".join(f"{n} {u:.6f} RPM" for n, u in zip(names, answer.unmet_rpm, strict=True)
                                             if u > 0))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``qos``: solve the pool for every update and print; exit 1 if an update leaves demand unmet or has no
    solution (the answer is still printed)."""
    if not (math.isfinite(args.time_limit_s) and args.time_limit_s > 0):
        raise InvalidInputError(f"--time-limit must be a finite number > 0, got {args.time_limit_s!r}")
    types = load_instances(args.instances)
    updates = load_updates(args.updates)
    policy = Policy(args.policy)
    answers: list[tuple[float, PoolAnswer]] = [(t, solve_pool(types, classes, policy, args.time_limit_s))
                                               for t, classes in updates]
    if args.json:
        print(json.dumps([answer_json(t, a) for t, a in answers], indent=1))
    else:
        print("\n".join(answer_text(t, a) for t, a in answers))
    return 0 if all(a.status != "INFEASIBLE" and not any(a.unmet_rpm) for _, a in answers) else 1
