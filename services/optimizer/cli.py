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
from services.core.model import Deviation, Robustness, ServiceModel, SolverKind, SystemData
from services.optimizer import analyze_cli, fit_cli, llmro_cli, qos_cli
from services.optimizer.robust import report_text
from services.optimizer.solver import DEFAULT_TIME_LIMIT_S, SolverDefaults, solve
from services.optimizer.table import solution_table
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
    analyze_cli.add_parser(sub)
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
            return analyze_cli.run(args)
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
