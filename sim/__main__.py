"""Command line: `python -m sim run SCENARIO [--policies ...] [--seed N] [--out DIR]`, `list`, `evaluate`.

run       simulate one scenario (a shipped name or a file) under the policies, print the table, write
          summary.json, table.md and a PNG into --out (default sim-results/SCENARIO); a pool scenario
          (sim/scenarios/pools/, e.g. seed000-two-phase) runs its four arms and prints their table and the
          check of the priority latency models;
list      the shipped scenarios;
evaluate  every shipped scenario, then docs/evaluation.md with its tables and figures (make evaluate);
check     the simulator against the real-time emulator and against the real vLLM sweeps (median APE).
Exit status 2 for a bad scenario or argument, naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from services.core.errors import InvalidInputError
from sim import poolsim, report, scenario
from sim.policies import INFERNO_VARIANTS
from sim.run import DEFAULT_POLICIES, run_scenario, write_outputs


def _policies(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one policy")
    known = (*scenario.POLICY_NAMES, *INFERNO_VARIANTS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown policy {unknown[0]!r} (known: {', '.join(known)})")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate one scenario under the policies")
    run.add_argument("scenario", help="a shipped scenario name (python -m sim list) or a YAML/JSON file")
    run.add_argument("--policies", type=_policies, default=list(DEFAULT_POLICIES),
                     help="comma-separated, from " + ",".join((*scenario.POLICY_NAMES, *INFERNO_VARIANTS))
                     + " (default: " + ",".join(DEFAULT_POLICIES) + ")")
    run.add_argument("--seed", type=int, default=None, help="arrival seed (default: the scenario's)")
    run.add_argument("--out", default=None, help="output directory (default: sim-results/SCENARIO, "
                                                 "SCENARIO-p90 with --slo-percentile 90)")
    run.add_argument("--slo-percentile", type=int, choices=[0, 50, 90, 95, 99], default=None, dest="slo_percentile",
                     help="read the scenario's SLOs as this percentile (inferno sizes for it; 0: as means; "
                          "default: the scenario's slo.percentile, else means)")
    sub.add_parser("list", help="list the shipped scenarios")
    evaluate = sub.add_parser("evaluate", help="run every shipped scenario and write docs/evaluation.md")
    evaluate.add_argument("--docs", default="docs", help="docs directory (default: docs)")
    evaluate.add_argument("--scenarios", default="", help="comma-separated subset (default: all shipped)")
    check = sub.add_parser("check", help="simulator vs the real-time emulator and vs the real vLLM sweeps")
    check.add_argument("--emulator-requests", type=int, default=120, help="requests of the real-time run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            for name in scenario.available():
                lines = scenario.load(name).description.splitlines()
                print(f"{name:22s} {lines[0] if lines else ''}")
            for name in poolsim.available():
                print(f"{name:22s} (pool) {poolsim.load(name).description.split('. ')[0]}")
            return 0
        if args.command == "evaluate":
            from sim import evaluate

            chosen = [n for n in args.scenarios.split(",") if n] or scenario.available()
            evaluate.evaluate(chosen, args.docs)
            return 0
        if args.command == "check":
            from sim import checks

            print(checks.report(args.emulator_requests))
            return 0
        if poolsim.is_pool_scenario(args.scenario):  # several classes sharing a pool (sim/poolsim.py)
            pooled = poolsim.run(poolsim.load(args.scenario), args.seed)
            print(f"## {pooled.scenario.name} (seed {pooled.seed}, {pooled.scenario.duration_s / 60:.0f} min "
                  f"simulated; arms priority pool (conservative model), priority pool (prefix model), FCFS pool, "
                  f"per-class servers)\n")
            print(poolsim.table(pooled))
            hours = poolsim.MODEL_CHECK_HOURS
            print(f"\nThe priority latency models (prefix conservation; conservative: Cobham's non-preemptive "
                  f"priority wait) against one replica run open loop at each model's answer's per-replica rates, "
                  f"{hours:g} simulated hours:\n")
            print(poolsim.model_check_table(poolsim.model_check(pooled.scenario, args.seed, hours)))
            return 0
        loaded = scenario.load(args.scenario)
        if args.slo_percentile is not None:
            loaded = dataclasses.replace(loaded, slo=dataclasses.replace(loaded.slo, percentile=args.slo_percentile))
        result = run_scenario(loaded, args.policies, args.seed)
        suffix = f"-p{loaded.slo.percentile}" if loaded.slo.percentile else ""
        out = args.out or os.path.join("sim-results", loaded.name + suffix)
        paths = write_outputs(result, out)
    except InvalidInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"## {loaded.name} (seed {result.seed}, {loaded.duration_s / 60:.0f} min simulated; SLO TTFT "
          f"{loaded.slo.ttft_ms:g} ms, ITL {loaded.slo.itl_ms:g} ms read as {loaded.slo.reading})\n")
    print(report.table(loaded, result.summaries))
    print("\nSLO verdicts from the per-request samples (held / missed):")
    for line in report.verdict_lines(result.summaries):
        print(f"  {line}")
    print(f"\nsimulated in {result.wall_s:.1f} s; wrote {paths['summary']}, {paths['table']}, {paths['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
