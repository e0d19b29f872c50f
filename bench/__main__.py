"""`make bench`: every benchmark module, one call each (add yours as one line).

``python -m bench [optimizer] [exact] [cycle] [robust] [emulator] [fidelity] [percentiles]`` runs only the named
ones (all by default;
the emulator's fidelity and CPU-cost benchmark takes about 5 minutes, the model fidelity one about 15, the cycle
benchmark about 1).
"""

from __future__ import annotations

import argparse

from bench import (
    cycle_bench,
    emulator_bench,
    exact_bench,
    fidelity_bench,
    optimizer_bench,
    percentile_bench,
    robust_bench,
)

BENCHMARKS = {
    "optimizer": (optimizer_bench.run, "solve time of Inferno's sample sets and synthetic 100/1,000-server systems"),
    "exact": (exact_bench.run, "exact vs greedy on the sample sets and seeded scarce-capacity variants; exact solve "
              "time for 100 / 1,000 servers with scarce capacity (about 2 minutes)"),
    "cycle": (cycle_bench.run, "control-cycle latency per phase on the local demo stack (about 1 minute)"),
    "robust": (robust_bench.run, "LLM-RO reference (objective, GPUs, solve time; Gamma sweep) (about 1 minute)"),
    "emulator": (emulator_bench.run, "emulator fidelity vs the queueing model, and its CPU cost (about 5 minutes)"),
    "fidelity": (fidelity_bench.run, "model v1 vs the engine in event time; fit on the real vLLM sweeps in and out "
                 "of sample; the engine replaying the sweeps (about 15 minutes)"),
    "percentiles": (percentile_bench.run, "model v1's TTFT/ITL P50/P90/P99 vs the engine's per-request samples at "
                    "30/60/90% load, fixed and exponential lengths (about 1 minute)"),
}

width = max(len(name) for name in BENCHMARKS)
parser = argparse.ArgumentParser(
    prog="python -m bench", formatter_class=argparse.RawDescriptionHelpFormatter,
    description="Run the named benchmarks (all by default), printing their figures.",
    epilog="benchmarks:\n" + "\n".join(f"  {name:<{width}}  {line}" for name, (_, line) in BENCHMARKS.items()))
parser.add_argument("names", nargs="*", metavar="BENCHMARK", help=f"one of {', '.join(BENCHMARKS)}")
chosen = parser.parse_args().names or list(BENCHMARKS)
unknown = [name for name in chosen if name not in BENCHMARKS]
if unknown:
    parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
for name in chosen:
    BENCHMARKS[name][0]()
    print(flush=True)
