"""Command line of the optimizer: `solve` (print / write a solution), `analyze` (what-if for one model,
accelerator and load), `robust` (the LLM-RO reference problem) and `serve` (the gRPC service; the default with no
subcommand)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from services.core.bounds import MAX_DEVIATION, MAX_ROBUST_BUDGET
from services.core.datafiles import LoadedSystem, load_system_dir, load_system_file, write_solution
from services.core.errors import InfernoError, InvalidInputError
from services.core.model import Deviation, Load, Robustness, ServiceModel, SolverKind, SystemData
from services.optimizer import fit_cli, llmro_cli, qos_cli
from services.optimizer.queueing import ChainBatch, analyze_point
from services.optimizer.robust import report_text
from services.optimizer.servicetime import default_queue, replica_model_for
from services.optimizer.sizing import Targets, batch_size, size_replicas
from services.optimizer.solver import DEFAULT_TIME_LIMIT_S, SolverDefaults, solve
from services.optimizer.table import analysis_text, solution_table
from services.runtime.config import Config
from services.runtime.startup import listening, run_service


def _source(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--data-dir", help="directory holding Inferno's six data files")
    group.add_argument("--system-data", help="one system-data.json file")
    parser.add_argument("--strict", action="store_true",
                        help="fail on what would be a warning (unknown keys, out-of-range priorities, capacity "
                             "for unknown types) instead of printing it")
    parser.add_argument("--service-model", choices=[m.value for m in ServiceModel],
                        help="override the service-time model of optimizer-data.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.optimizer", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    solve_cmd = sub.add_parser("solve", help="solve a system and print the allocation table")
    _source(solve_cmd, required=True)
    solve_cmd.add_argument("--output", help="write solution-data.json (Inferno's format) here; its directory "
                           "must exist (checked before solving)")
    solve_cmd.add_argument("--unlimited", action="store_true", help="ignore capacity")
    solve_cmd.add_argument("--solver", choices=[k.value for k in SolverKind],
                           help="exact (CP-SAT over the candidates; the default) or greedy (Inferno's algorithm and "
                                "model choices, reproducing its published solutions); overrides optimizer-data.json")
    solve_cmd.add_argument("--time-limit", type=float, dest="time_limit_s", metavar="SECONDS",
                           help="the exact solver's time limit (default: timeLimitSeconds of optimizer-data.json, "
                                f"else {DEFAULT_TIME_LIMIT_S:g})")
    solve_cmd.add_argument("--robust-gamma", type=float, dest="robust_gamma", metavar="GAMMA",
                           help="robust sizing (docs/model.md s10.2): Gamma >= 0, overriding the robustness "
                                "section of optimizer-data.json (0: off)")
    solve_cmd.add_argument("--max-deviation", type=float, dest="max_deviation", metavar="D",
                           help="robust sizing: largest relative increase of alpha, beta and gamma (0..10) for "
                                "every model/accelerator without its own entry, overriding the section's")
    analyze = sub.add_parser("analyze", help="evaluate one model / accelerator / load point")
    _source(analyze, required=True)
    analyze.add_argument("--model", required=True)
    analyze.add_argument("--accelerator", required=True)
    analyze.add_argument("--rpm", type=float, required=True,
                         help="total arrival rate, requests per minute; ignored when a throughput target applies "
                              "(see --tps)")
    analyze.add_argument("--in-tokens", type=float, required=True)
    analyze.add_argument("--out-tokens", type=float, required=True)
    analyze.add_argument("--replicas", type=int, default=1, help="replicas sharing the load (default 1)")
    analyze.add_argument("--batch", type=int, default=0, help="max batch size (default: the scaling rule)")
    analyze.add_argument("--service-class", dest="service_class",
                         help="take SLO targets (slo-itl, slo-ttft, slo-tps) from this class's target for --model; "
                              "--itl / --ttft / --tps override them one by one")
    analyze.add_argument("--itl", type=float, help="mean ITL target, ms (>= 0; 0 means no target)")
    analyze.add_argument("--ttft", type=float, help="mean TTFT target, ms (>= 0; 0 means no target)")
    analyze.add_argument("--tps", type=float,
                         help="throughput target, output tokens/s (>= 0; 0 means no target). As Inferno's slo-tps, "
                              "a target > 0 (from --tps or the class) REPLACES --rpm: the total arrival rate becomes "
                              "tps / --out-tokens requests/s, and each replica is sized at 90%% of its stable limit")
    llmro_cli.add_parser(sub)
    fit_cli.add_parser(sub)
    qos_cli.add_parser(sub)
    sub.add_parser("serve", help="run the gRPC OptimizerService (the default)")
    return parser


def _load(args: argparse.Namespace) -> SystemData:
    loaded: LoadedSystem = (load_system_dir(args.data_dir, strict=args.strict) if args.data_dir
                            else load_system_file(args.system_data, strict=args.strict))
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    system = loaded.system
    if args.service_model:
        system = replace(system, optimizer=replace(system.optimizer, service_model=ServiceModel(args.service_model)))
    return system


def _check_output(path: str) -> None:
    """Fail before solving when ``path`` cannot be written: its directory is missing or not writable, or it is a
    directory. The message names the path as given."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidInputError(f"--output {path!r} is a directory; give a file path")
    if not os.path.isdir(directory):
        raise InvalidInputError(f"--output {path!r}: directory {os.path.dirname(path) or '.'!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise InvalidInputError(f"--output {path!r}: directory {os.path.dirname(path) or '.'!r} is not writable")


def _solve(args: argparse.Namespace) -> int:
    if args.output:
        _check_output(args.output)
    system = _load(args)
    if args.unlimited:
        system = replace(system, optimizer=replace(system.optimizer, unlimited=True))
    if args.solver:
        system = replace(system, optimizer=replace(system.optimizer, solver=SolverKind(args.solver)))
    if args.time_limit_s is not None:
        if not math.isfinite(args.time_limit_s) or args.time_limit_s <= 0:
            raise InvalidInputError(f"--time-limit must be a number of seconds > 0, got {args.time_limit_s!r}")
        system = replace(system, optimizer=replace(system.optimizer, time_limit_s=args.time_limit_s))
    system = _robustness(args, system)
    result = solve(system)
    print(solution_table(system, result.solution, result.solver, result.stats), end="")
    if result.robust is not None:
        print(report_text(result.robust, system, result.solution.allocations), end="")
    if args.output:
        try:
            write_solution(args.output, result.solution)
        except OSError as err:
            raise InvalidInputError(f"--output {args.output!r}: cannot write: {err.strerror}") from None
        print(f"solution written to {args.output}")
    return 0


def _robustness(args: argparse.Namespace, system: SystemData) -> SystemData:
    """``system`` with --robust-gamma / --max-deviation applied to its robustness section (docs/model.md s10.2)."""
    if args.robust_gamma is None and args.max_deviation is None:
        return system
    for flag, value, high in (("--robust-gamma", args.robust_gamma, MAX_ROBUST_BUDGET),
                              ("--max-deviation", args.max_deviation, MAX_DEVIATION)):
        if value is not None and not (math.isfinite(value) and 0 <= value <= high):
            raise InvalidInputError(f"{flag} must be within 0..{high:g}, got {value!r}")
    section = system.optimizer.robustness
    if section is None and (args.robust_gamma is None or args.max_deviation is None):
        raise InvalidInputError("the data have no robustness section: give both --robust-gamma and --max-deviation")
    section = section or Robustness()
    if args.robust_gamma is not None:
        section = replace(section, gamma=args.robust_gamma)
    if args.max_deviation is not None:
        d = args.max_deviation
        section = replace(section, default=Deviation(d, d, d))
    return replace(system, optimizer=replace(system.optimizer, robustness=section))


def _targets(args: argparse.Namespace, system: SystemData) -> Targets:
    base = Targets()
    if args.service_class:
        svc = system.service_class(args.service_class)
        if svc is None:
            known = ", ".join(sorted(c.name for c in system.service_classes)) or "none"
            raise InvalidInputError(f"unknown service class {args.service_class!r} (known: {known})")
        target = svc.target_for(args.model)
        if target is None:
            raise InvalidInputError(f"--service-class {args.service_class!r} has no target for model {args.model!r}")
        base = Targets.of(target, system.optimizer.blocking_bound)
    return Targets(args.itl if args.itl is not None else base.itl_ms,
                   args.ttft if args.ttft is not None else base.ttft_ms,
                   args.tps if args.tps is not None else base.tps, base.blocking)


def _check_point(args: argparse.Namespace) -> None:
    for name in ("rpm", "in_tokens"):
        if not math.isfinite(getattr(args, name)) or getattr(args, name) < 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)!r}")
    if not math.isfinite(args.out_tokens) or args.out_tokens <= 0:
        raise InvalidInputError(f"--out-tokens must be > 0, got {args.out_tokens!r}")
    if args.replicas < 1 or args.batch < 0:
        raise InvalidInputError(f"--replicas must be >= 1 and --batch >= 0, got {args.replicas}, {args.batch}")
    for name in ("itl", "ttft", "tps"):
        value = getattr(args, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InvalidInputError(f"--{name} must be >= 0 (0 means no target), got {value!r}")


def _analyze(args: argparse.Namespace) -> int:
    _check_point(args)
    system = _load(args)
    perf = system.perf(args.model, args.accelerator)
    if perf is None:
        raise InvalidInputError(f"no performance data for model {args.model!r} on accelerator {args.accelerator!r}")
    batch = batch_size(args.batch, perf, args.out_tokens)
    rm = replica_model_for(system.optimizer, Load(args.rpm, args.in_tokens, args.out_tokens), perf.perf, batch,
                           default_queue(system.optimizer, batch))
    targets = _targets(args, system)
    # Inferno's slo-tps (docs/model.md s6): a throughput target sets the load, Lambda = slo-tps / K.
    total_per_ms = targets.tps / (1000 * args.out_tokens) if targets.tps > 0 else args.rpm / 60_000
    point = analyze_point(rm, total_per_ms / args.replicas)
    sizing = size_replicas(ChainBatch.build([rm]), [targets])
    capacity = float(sizing.capacity_per_ms[0])
    if total_per_ms == 0:
        needed: int | None = 0  # no load needs no replica (Inferno: zero load, minNumReplicas 0 -> empty)
    elif math.isfinite(capacity) and capacity > 0:
        needed = math.ceil(total_per_ms / capacity)
    else:
        needed = None
    print(f"{args.model} on {args.accelerator}: batch {batch}, queue {rm.max_queue}, "
          f"model {rm.service_model.value}, targets ITL {targets.itl_ms:g} ms, TTFT {targets.ttft_ms:g} ms, "
          f"tps {targets.tps:g}")
    if targets.tps > 0:
        print(f"total arrival rate:        {total_per_ms * 60_000:.3f} req/min from the throughput target "
              f"({targets.tps:g} tokens/s / {args.out_tokens:g} out tokens); --rpm {args.rpm:g} ignored")
    print(analysis_text(point, float(sizing.rate_per_ms[0]), args.replicas, needed), end="")
    return 0


SERVE_SUMMARY = ("The Inferno optimizer: gRPC OptimizerService sizing every server and solving the allocation\n"
                 "under capacity and priorities (INFERNO_SOLVER, INFERNO_SOLVER_TIME_LIMIT).")


def _start(config: Config) -> None:
    """Serve the OptimizerService until SIGTERM (the same path as the other services: run_service)."""
    from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
    from services.runtime.grpcserve import serve

    address = f"{config.bind_address}:{config.optimizer_port}"
    defaults = SolverDefaults(SolverKind(config.solver), config.solver_time_limit_s)
    with listening(address, "INFERNO_BIND_ADDRESS", "INFERNO_OPTIMIZER_PORT"):
        serve(register(OptimizerServicer(defaults=defaults)), [SERVICE_NAME], address, grace_s=config.shutdown_grace_s,
              component="optimizer", health_address=config.health_address(config.optimizer_health_port))


def _serve() -> int:
    return run_service([], prog="python -m services.optimizer serve", summary=SERVE_SUMMARY,
                       ports={"gRPC OptimizerService": "INFERNO_OPTIMIZER_PORT"}, start=_start)


def main(argv: Sequence[str]) -> int:
    """Run the command in ``argv``; returns the exit status (errors: message on stderr, status 1)."""
    args = _parser().parse_args(list(argv))
    try:
        if args.command == "solve":
            return _solve(args)
        if args.command == "analyze":
            return _analyze(args)
        if args.command == "robust":
            return llmro_cli.run(args)
        if args.command == "fit":
            return fit_cli.run(args)
        if args.command == "qos":
            return qos_cli.run(args)
        return _serve()
    except (InfernoError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
