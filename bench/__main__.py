"""`make bench`: every benchmark module, one call each (add yours as one line).

``python -m bench [optimizer] [cycle] [emulator]`` runs only the named ones (all by default; the emulator's
fidelity and CPU-cost benchmark takes about 5 minutes, the cycle benchmark about 1).
"""

from __future__ import annotations

import sys

from bench import cycle_bench, emulator_bench, optimizer_bench

BENCHMARKS = {"optimizer": optimizer_bench.run, "cycle": cycle_bench.run, "emulator": emulator_bench.run}

chosen = sys.argv[1:] or list(BENCHMARKS)
unknown = [name for name in chosen if name not in BENCHMARKS]
if unknown:
    sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
for name in chosen:
    BENCHMARKS[name]()
    print(flush=True)
