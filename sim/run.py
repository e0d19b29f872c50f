"""Run one scenario under several policies on the same seeded arrivals and write what it reports."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sim import arrivals as arrivals_mod
from sim import policies as policies_mod
from sim import report
from sim.scenario import Scenario
from sim.simulate import RunResult, Simulation

DEFAULT_POLICIES = ("inferno", "hpa", "wva-v1", "static", "oracle")


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """The results and summaries of one scenario, in the order the policies were asked for."""

    scenario: Scenario
    seed: int
    results: tuple[RunResult, ...]
    summaries: tuple[dict[str, Any], ...]
    wall_s: float


def run_scenario(scenario: Scenario, policy_names: Sequence[str] = DEFAULT_POLICIES, seed: int | None = None,
                 progress: TextIO | None = sys.stderr, clock: Callable[[], float] = time.perf_counter) -> ScenarioRun:
    """Simulate ``scenario`` under each policy on the same arrivals (``seed`` overrides the file's)."""
    seed = scenario.seed if seed is None else seed
    built = [policies_mod.build(name, scenario) for name in policy_names]
    traffic = arrivals_mod.generate(scenario.load.schedule, scenario.load.prompt_tokens, scenario.load.output_tokens,
                                    seed)
    started = clock()
    results = []
    for policy in built:
        t0 = clock()
        result = Simulation(scenario, policy, traffic).run()
        results.append(result)
        if progress is not None:
            print(f"{scenario.name}: {policy.name:8s} simulated {result.simulated_s:.0f} s, {len(result.requests)} "
                  f"requests in {clock() - t0:.1f} s", file=progress, flush=True)
    oracle = next((r for r in results if r.policy == "oracle"), None)
    summaries = tuple({"scenario": scenario.name, "seed": seed, **report.summarize(r, scenario, oracle)}
                      for r in results)
    return ScenarioRun(scenario, seed, tuple(results), summaries, clock() - started)


def write_outputs(run: ScenarioRun, out_dir: str) -> dict[str, str]:
    """summary.json, table.md and SCENARIO.png in ``out_dir``; returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"summary": os.path.join(out_dir, "summary.json"), "table": os.path.join(out_dir, "table.md"),
             "figure": os.path.join(out_dir, f"{run.scenario.name}.png")}
    with open(paths["summary"], "w", encoding="utf-8") as handle:
        json.dump(list(run.summaries), handle, indent=2)
        handle.write("\n")
    with open(paths["table"], "w", encoding="utf-8") as handle:
        handle.write(report.table(run.scenario, run.summaries) + "\n")
    report.figure(run.scenario, run.results, paths["figure"])
    return paths
