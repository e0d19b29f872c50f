"""Optimizer benchmark: solve time for the Inferno sample sets and seeded synthetic systems of 100 and 1,000
servers over 12 accelerator kinds. Prints figures; asserts nothing (targets: large < 100 ms, 1,000 < 2 s)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from services.core.datafiles import load_system_dir
from services.core.model import SystemData
from services.optimizer.solver import solve
from services.optimizer.synthetic import synthetic_system

_SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples", "inferno")


def _time(system: SystemData, repeats: int) -> tuple[float, float, int, int]:
    """(median ms, best ms, candidates, unallocated) over ``repeats`` solves after one warm-up."""
    result = solve(system)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        solve(system)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), result.candidates, len(result.solution.unallocated)


def run(print_line: Callable[[str], None] = print) -> None:
    """Solve each system a few times and print median / best wall time."""
    cases: list[tuple[str, Callable[[], SystemData], int, float]] = [
        ("inferno small (15 servers)", lambda: load_system_dir(os.path.join(_SAMPLES, "small")).system, 7, 0),
        ("inferno large (27 servers)", lambda: load_system_dir(os.path.join(_SAMPLES, "large")).system, 7, 100),
        ("synthetic 100 servers", lambda: synthetic_system(100, seed=1), 5, 0),
        ("synthetic 1,000 servers", lambda: synthetic_system(1000, seed=1), 3, 2000),
        ("synthetic 1,000 servers, tight capacity",
         lambda: synthetic_system(1000, seed=1, capacity_per_type=600), 3, 0),
    ]
    print_line("optimizer: solve time (greedy, v0.3 model)")
    for label, make, repeats, target_ms in cases:
        median_ms, best_ms, candidates, unallocated = _time(make(), repeats)
        target = f"  target < {target_ms:g} ms" if target_ms else ""
        print_line(f"  {label:<42} median {median_ms:9.1f} ms  best {best_ms:9.1f} ms  "
                   f"candidates {candidates:6d}  unallocated {unallocated:4d}{target}")


if __name__ == "__main__":
    run()
