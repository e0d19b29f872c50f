"""`python -m services.optimizer analyze`: the what-if tool for one replica model and one load (docs/model.md s2-s5).

perfParms come from the data files (--data-dir / --system-data with --model and --accelerator) or directly
(--alpha --beta --gamma --max-batch, no data needed). It prints the point at the given load, the largest rate
per replica meeting each target (TTFT, ITL, throughput) and the sized rate (the least), the metrics there, the
replicas the load needs, the batch size needing the fewest replicas (s4.1) and the optimal concurrency; --json
prints the same as one object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from services.core.datafiles import load_system_dir, load_system_file
from services.core.errors import InvalidInputError
from services.core.model import (
    SLO_PERCENTILES,
    Load,
    ModelPerf,
    OptimizerSettings,
    PerfParms,
    ServiceModel,
    SystemData,
)
from services.optimizer.batchsearch import BatchProblem, bound_targets, fewest_replica_batches, optimal_concurrency
from services.optimizer.percentiles import predict_percentiles
from services.optimizer.sizing import (
    HIGH_FRACTION,
    PERCENTILE_KINDS,
    TPS_FRACTION,
    Targets,
    batch_size,
    bisect_rates,
    size_replicas,
)
from services.optimizer.table import analysis_text
from services.perfmodel.queueing import ChainBatch, PointAnalysis, analyze_point
from services.perfmodel.servicetime import ReplicaModel, default_queue, replica_model_for

PER_MIN = 60_000.0
"""Requests per ms -> requests per minute."""
_PERCENTILE_ARGS = tuple(f"{metric}_p{q}" for metric in ("ttft", "itl") for q in SLO_PERCENTILES)
"""argparse names of the percentile-target flags (--ttft-p90 ...)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``analyze`` on the optimizer CLI's subparsers."""
    cmd = sub.add_parser("analyze", help="what-if for one model / accelerator / load (data files or perfParms)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = cmd.add_mutually_exclusive_group()
    group.add_argument("--data-dir", help="directory holding Inferno's six data files")
    group.add_argument("--system-data", help="one system-data.json file")
    cmd.add_argument("--strict", action="store_true", help="fail on data-file warnings")
    cmd.add_argument("--service-model", choices=[m.value for m in ServiceModel],
                     help="service-time model (default: the data's, else auto = v1)")
    cmd.add_argument("--model", help="model name (required with data files; a label otherwise)")
    cmd.add_argument("--accelerator", help="accelerator name (required with data files; a label otherwise)")
    cmd.add_argument("--alpha", type=float, help="perfParms alpha, ms (with --beta, --gamma: no data files needed)")
    cmd.add_argument("--beta", type=float, help="perfParms beta, ms per token computed")
    cmd.add_argument("--gamma", type=float, help="perfParms gamma, ms per token read from the KV cache")
    cmd.add_argument("--max-batch", type=int, dest="max_batch",
                     help="with perfParms given: the largest batch a replica holds (default 256)")
    cmd.add_argument("--rpm", type=float, required=True,
                     help="total arrival rate, requests per minute; ignored when a throughput target applies")
    cmd.add_argument("--in-tokens", type=float, required=True)
    cmd.add_argument("--out-tokens", type=float, required=True)
    cmd.add_argument("--replicas", type=int, default=1, help="replicas sharing the load (default 1)")
    cmd.add_argument("--batch", type=int, default=0,
                     help="batch size (default: the memory rule with data files, --max-batch otherwise)")
    cmd.add_argument("--queue-size", type=int, dest="queue_size",
                     help="queue size per replica (default: 10 x batch, 1000 x batch under model v1)")
    cmd.add_argument("--service-class", dest="service_class",
                     help="take SLO targets from this class's target for --model (data files); --itl / --ttft / "
                          "--tps override them one by one")
    cmd.add_argument("--itl", type=float, help="mean ITL target, ms (>= 0; 0 means no target)")
    cmd.add_argument("--ttft", type=float, help="mean TTFT target, ms (>= 0; 0 means no target)")
    for metric in ("ttft", "itl"):
        for q in SLO_PERCENTILES:
            cmd.add_argument(f"--{metric}-p{q}", type=float, dest=f"{metric}_p{q}",
                             help=f"P{q} {metric.upper()} target, ms (>= 0; 0 means no target; docs/model.md s3.2)")
    cmd.add_argument("--tps", type=float,
                     help="throughput target, output tokens/s (>= 0; 0 means no target). As Inferno's slo-tps, "
                          "a target > 0 (from --tps or the class) REPLACES --rpm: the total arrival rate becomes "
                          "tps / --out-tokens requests/s, and each replica is sized at 90%% of its stable limit")
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


@dataclass(frozen=True, slots=True)
class _Setup:
    label: str
    settings: OptimizerSettings
    model: ReplicaModel
    bound: int
    targets: Targets
    total_per_ms: float


def _check(args: argparse.Namespace) -> None:
    for name in ("rpm", "in_tokens"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 0, got {value!r}")
    if not math.isfinite(args.out_tokens) or args.out_tokens <= 0:
        raise InvalidInputError(f"--out-tokens must be > 0, got {args.out_tokens!r}")
    if args.replicas < 1 or args.batch < 0:
        raise InvalidInputError(f"--replicas must be >= 1 and --batch >= 0, got {args.replicas}, {args.batch}")
    if args.queue_size is not None and args.queue_size < 0:
        raise InvalidInputError(f"--queue-size must be >= 0, got {args.queue_size}")
    if args.max_batch is not None and args.max_batch < 1:
        raise InvalidInputError(f"--max-batch must be >= 1, got {args.max_batch}")
    for name in ("itl", "ttft", "tps", "alpha", "beta", "gamma", *_PERCENTILE_ARGS):
        value = getattr(args, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            note = " (0 means no target)" if name in ("itl", "ttft", "tps", *_PERCENTILE_ARGS) else ""
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 0{note}, got {value!r}")


def _perf(args: argparse.Namespace, system: SystemData | None) -> tuple[ModelPerf, str]:
    direct = [args.alpha, args.beta, args.gamma]
    if any(v is not None for v in direct):
        if any(v is None for v in direct):
            raise InvalidInputError("--alpha, --beta and --gamma go together")
        if args.alpha == 0 and args.beta == 0 and args.gamma == 0:
            raise InvalidInputError("--alpha, --beta and --gamma are all 0: no service time")
        bound = args.max_batch or 256
        perf = ModelPerf(args.model or "model", args.accelerator or "accelerator", 1, bound,
                         max(int(args.out_tokens), 1), PerfParms(args.alpha, args.beta, args.gamma))
        return perf, f"{perf.model} on {perf.accelerator} (perfParms given)"
    if system is None:
        raise InvalidInputError("give --data-dir or --system-data (with --model and --accelerator), "
                                "or the perfParms --alpha --beta --gamma")
    if not args.model or not args.accelerator:
        raise InvalidInputError("--model and --accelerator are required with data files")
    perf = system.perf(args.model, args.accelerator)
    if perf is None:
        raise InvalidInputError(f"no performance data for model {args.model!r} on accelerator {args.accelerator!r}")
    return perf, f"{args.model} on {args.accelerator}"


def _targets(args: argparse.Namespace, system: SystemData | None) -> Targets:
    base = Targets()
    if args.service_class:
        if system is None:
            raise InvalidInputError("--service-class needs data files (--data-dir or --system-data)")
        svc = system.service_class(args.service_class)
        if svc is None:
            known = ", ".join(sorted(c.name for c in system.service_classes)) or "none"
            raise InvalidInputError(f"unknown service class {args.service_class!r} (known: {known})")
        target = svc.target_for(args.model)
        if target is None:
            raise InvalidInputError(f"--service-class {args.service_class!r} has no target for model {args.model!r}")
        base = Targets.of(target, system.optimizer.blocking_bound)
    percentiles = {(metric, q): value for metric, q, value in base.percentiles}
    for metric in ("itl", "ttft"):
        for q in SLO_PERCENTILES:
            given = getattr(args, f"{metric}_p{q}")
            if given is not None:
                percentiles[(metric, float(q))] = given
    return Targets(args.itl if args.itl is not None else base.itl_ms,
                   args.ttft if args.ttft is not None else base.ttft_ms,
                   args.tps if args.tps is not None else base.tps, base.blocking,
                   tuple((metric, q, value) for (metric, q), value in sorted(percentiles.items()) if value > 0))


def _setup(args: argparse.Namespace, load_warnings: list[str]) -> _Setup:
    system = None
    if args.data_dir or args.system_data:
        loaded = (load_system_dir(args.data_dir, strict=args.strict) if args.data_dir
                  else load_system_file(args.system_data, strict=args.strict))
        load_warnings.extend(loaded.warnings)
        system = loaded.system
    settings = system.optimizer if system is not None else OptimizerSettings()
    if args.service_model:
        settings = replace(settings, service_model=ServiceModel(args.service_model))
    perf, label = _perf(args, system)
    bound = batch_size(0, perf, args.out_tokens)
    batch = args.batch or bound
    queue = args.queue_size if args.queue_size is not None else default_queue(settings, batch)
    model = replica_model_for(settings, Load(args.rpm, args.in_tokens, args.out_tokens), perf.perf, batch, queue)
    targets = _targets(args, system)
    # Inferno's slo-tps (docs/model.md s6): a throughput target sets the load, Lambda = slo-tps / K.
    total = targets.tps / (1000 * args.out_tokens) if targets.tps > 0 else args.rpm / PER_MIN
    return _Setup(label, settings, model, bound, targets, total)


def _per_target_rates(model: ReplicaModel, targets: Targets) -> dict[str, float | None]:
    """Largest rate per replica (requests/ms) meeting each set target alone; None when unreachable."""
    chains = ChainBatch.build([model])
    wanted = [("ttft", 1, targets.ttft_ms), ("itl", 0, targets.itl_ms)]
    rates: dict[str, float | None] = {}
    for name, kind, target in wanted:
        if target > 0:
            rate = float(bisect_rates(chains, np.array([0]), np.array([kind]), np.array([target]))[0])
            rates[name] = None if math.isnan(rate) else rate
    for metric, q, target in targets.percentiles:
        rate = float(bisect_rates(chains, np.array([0]), np.array([PERCENTILE_KINDS[metric]]), np.array([target]),
                                  np.array([q]))[0])
        rates[f"{metric}_p{q:g}"] = None if math.isnan(rate) else rate
    if targets.tps > 0:
        rates["tps"] = TPS_FRACTION * HIGH_FRACTION * float(chains.mu_full_per_ms[0])
    return rates


def _point_json(point: PointAnalysis, model: ReplicaModel) -> dict[str, float]:
    """The point's figures with its predicted percentiles beside the means: ``ttft_ms_p50`` .. ``itl_ms_p99``
    (docs/model.md s3.2)."""
    got = predict_percentiles(ChainBatch.build([model]), np.array([point.rate_per_ms]), SLO_PERCENTILES)
    figures = {"arrival_rate_rpm": point.rate_per_ms * PER_MIN, "throughput_rpm": point.throughput_per_ms * PER_MIN,
               "itl_ms": point.itl_ms, "ttft_ms": point.ttft_ms, "wait_ms": point.wait_ms,
               "service_ms": point.service_ms, "utilization": point.utilization, "blocking": point.blocking}
    return figures | got.figures(0)


def _percentile_text(figures: dict[str, float]) -> str:
    """'TTFT P50/P90/P95/P99 a/b/c/d ms, ITL P50/.. ms' of a point's figures."""
    names = "/".join(f"P{q}" for q in SLO_PERCENTILES)
    return "; ".join(f"{metric.upper()} {names} " + "/".join(f"{figures[f'{metric}_ms_p{q}']:.3f}"
                                                             for q in SLO_PERCENTILES) + " ms"
                     for metric in ("ttft", "itl"))


def analysis(args: argparse.Namespace, warnings: list[str]) -> dict[str, Any]:
    """Everything ``analyze`` reports, as a JSON-ready dict (rates req/min per replica, times ms)."""
    setup = _setup(args, warnings)
    model, targets, total = setup.model, setup.targets, setup.total_per_ms
    point = analyze_point(model, total / args.replicas)
    sizing = size_replicas(ChainBatch.build([model]), [targets])
    sized = float(sizing.rate_per_ms[0])
    capacity = float(sizing.capacity_per_ms[0])
    needed = 0 if total == 0 else (math.ceil(total / capacity) if math.isfinite(capacity) and capacity > 0 else None)
    at_sized = analyze_point(model, sized) if math.isfinite(sized) else None
    rates = _per_target_rates(model, targets)
    fewest = None
    if total > 0 and needed is not None and not args.batch:
        [fewest] = fewest_replica_batches([BatchProblem(model, targets, total, 0, args.queue_size is not None)])
    concurrency = optimal_concurrency(model, targets) if any(bound_targets(targets)) else None
    return {
        "server": setup.label, "service_model": model.service_model.value, "batch": model.max_batch,
        "queue": model.max_queue, "batch_bound": setup.bound,
        "targets": {"itl_ms": targets.itl_ms, "ttft_ms": targets.ttft_ms, "tps": targets.tps,
                    **{f"{metric}_ms_p{q:g}": value for metric, q, value in targets.percentiles}},
        "total_arrival_rate_rpm": total * PER_MIN, "replicas": args.replicas,
        "point": _point_json(point, model), "stable_limit_rpm": point.max_rate_per_ms * PER_MIN,
        "rate_meeting_ttft_rpm": _rpm(rates.get("ttft", "unset")),
        "rate_meeting_itl_rpm": _rpm(rates.get("itl", "unset")),
        "rate_meeting_tps_rpm": _rpm(rates.get("tps", "unset")),
        **{f"rate_meeting_{name}_rpm": _rpm(rate) for name, rate in rates.items() if "_p" in name},
        "sized_rate_rpm": None if math.isnan(sized) else sized * PER_MIN,
        "at_sized_rate": None if at_sized is None else _point_json(at_sized, model),
        "replicas_needed": needed, "fewest_replicas_batch": fewest,
        "optimal_concurrency": None if concurrency is None else {
            "batch": concurrency.batch, "throughput_rpm": concurrency.throughput_per_ms * PER_MIN,
            "peak_rpm": concurrency.peak_per_ms * PER_MIN, "itl_bound": concurrency.itl_bound,
            "prefill_bound": concurrency.prefill_bound, "evaluations": concurrency.evaluations},
    }


def _rpm(rate: float | str | None) -> float | str | None:
    """req/min of a per-ms rate; "no target" for a target not set, None for an unreachable one."""
    if rate == "unset":
        return "no target"
    return None if rate is None else float(rate) * PER_MIN  # type: ignore[arg-type]


def _text(result: dict[str, Any], args: argparse.Namespace, point: PointAnalysis, sized_per_ms: float) -> str:
    t = result["targets"]
    lines = [f"{result['server']}: batch {result['batch']}, queue {result['queue']}, model {result['service_model']}, "
             f"targets ITL {t['itl_ms']:g} ms, TTFT {t['ttft_ms']:g} ms, tps {t['tps']:g}"
             + "".join(f", {key.split('_')[0].upper()} {key.split('_')[-1].upper()} {value:g} ms"
                       for key, value in t.items() if "_ms_p" in key)]
    if t["tps"] > 0:
        lines.append(f"total arrival rate:        {result['total_arrival_rate_rpm']:.3f} req/min from the throughput "
                     f"target ({t['tps']:g} tokens/s / {args.out_tokens:g} out tokens); --rpm {args.rpm:g} ignored")
    text = "\n".join(lines) + "\n" + analysis_text(point, sized_per_ms, args.replicas, result["replicas_needed"])
    extra = [f"{'percentiles:':<27}{_percentile_text(result['point'])}"]
    for key, name in (("rate_meeting_ttft_rpm", "TTFT"), ("rate_meeting_itl_rpm", "ITL"),
                      ("rate_meeting_tps_rpm", "tps"),
                      *((key, key.split("_")[2].upper() + " " + key.split("_")[3].upper()) for key in result
                        if key.startswith("rate_meeting_") and "_p" in key.removeprefix("rate_meeting_"))):
        value = result[key]
        if value == "no target":
            shown = "no target"
        elif value is None:
            shown = "unreachable (even at the lightest load)"
        else:
            shown = f"{value:.3f} req/min per replica"
        extra.append(f"{'rate meeting ' + name + ':':<27}{shown}")
    at = result["at_sized_rate"]
    if at is not None:
        extra.append(f"at the sized rate:         ITL {at['itl_ms']:.4f} ms, TTFT {at['ttft_ms']:.4f} ms, "
                     f"throughput {at['throughput_rpm']:.3f} req/min, utilization {at['utilization']:.4f}, "
                     f"wait {at['wait_ms']:.3f} ms")
        extra.append(f"{'  percentiles there:':<27}{_percentile_text(at)}")
    if result["fewest_replicas_batch"] is not None:
        extra.append(f"batch with fewest replicas: {result['fewest_replicas_batch']} "
                     f"(of at most {result['batch']}, docs/model.md s4.1)")
    oc = result["optimal_concurrency"]
    if oc is not None:
        shown = ("none (targets unreachable)" if oc["batch"] == 0 else
                 f"{oc['batch']} at {oc['throughput_rpm']:.3f} req/min (peak {oc['peak_rpm']:.3f} at 256; "
                 f"ITL bound {oc['itl_bound']}, prefill bound {oc['prefill_bound']})")
        extra.append(f"optimal concurrency:       {shown}")
    return text + "\n".join(extra) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run ``analyze``; bad input raises InvalidInputError (the CLI prints it and exits 1)."""
    _check(args)
    warnings: list[str] = []
    result = analysis(args, warnings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, allow_nan=False))
        return 0
    setup_point = PointAnalysis(
        result["point"]["arrival_rate_rpm"] / PER_MIN, result["point"]["throughput_rpm"] / PER_MIN,
        result["point"]["wait_ms"], result["point"]["service_ms"], result["point"]["itl_ms"],
        result["point"]["ttft_ms"], result["point"]["utilization"], result["point"]["blocking"],
        result["stable_limit_rpm"] / PER_MIN)
    sized = result["sized_rate_rpm"]
    print(_text(result, args, setup_point, float("nan") if sized is None else sized / PER_MIN), end="")
    return 0

