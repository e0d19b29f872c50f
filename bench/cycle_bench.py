"""Control-cycle latency on the local cluster: the demo's stack (four services as processes, gRPC on
loopback, Prometheus when installed, else direct scrape) at its base load; GET /invoke repeated, per-phase
milliseconds (read_data, collect, optimize, actuate, total) as the controller reports them, plus the HTTP
round trip seen by the caller. Each line holds its p95 to a target (a cycle should take a small share of the
60 s control period and leave the 30 s gRPC deadline far away): reading the data files 50 ms, collecting
(Deployments, Pods and the Prometheus queries) 500 ms, optimizing 100 ms, actuating 500 ms, the whole cycle
1 s, and 1.1 s for the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench.verdict import below
from harness.scenario import Scenario
from harness.stack import Stack

PHASES = ("read_data", "collect", "optimize", "actuate", "total")
TARGETS_MS = {"read_data": 50, "collect": 500, "optimize": 100, "actuate": 500, "total": 1000,
              "http round trip": 1100}
"""p95 targets per phase, ms (module docstring)."""


def run(print_line: Callable[[str], None] = print, cycles: int = 30, warmup_s: float = 35.0) -> None:
    """Start the stack, let the base load fill the metrics window for ``warmup_s``, run ``cycles`` cycles."""
    scenario = replace(Scenario(), step_at_s=10_000.0, duration_s=10_000.0)
    stack = Stack(scenario).start()
    try:
        stack.cluster.start_load(seed=3)
        time.sleep(warmup_s)
        timings: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "http round trip")}
        outcomes = []
        for _ in range(cycles):
            start = time.perf_counter()
            status, record = stack.services.invoke()
            timings["http round trip"].append((time.perf_counter() - start) * 1000.0)
            outcomes.append(record.get("outcome"))
            for phase in PHASES:
                timings[phase].append(float(record["timings_ms"].get(phase, float("nan"))))
        source = "Prometheus" if stack.cluster.prometheus_url else "direct scrape"
        print_line(f"control cycle on the local cluster (3 servers, metrics from {source}, {cycles} cycles, "
                   f"outcomes {sorted(set(outcomes))})")
        print_line(f"  {'phase':<16} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  p95 target")
        for phase, values in timings.items():
            p50, p95 = np.percentile(values, [50, 95])
            print_line(f"  {phase:<16} {p50:8.1f} {p95:8.1f} {max(values):8.1f}  {below(p95, TARGETS_MS[phase], 'ms')}")
    finally:
        stack.stop()


if __name__ == "__main__":
    run()
