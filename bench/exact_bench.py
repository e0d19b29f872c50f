"""Exact vs greedy (docs/model.md s9): both solvers on the same candidates (Inferno's v0.3 model, so the greedy is
Inferno's answer) for the two sample sets and a seeded family of scarce-capacity variants of each, and the exact
solver's time on synthetic systems of 100 and 1,000 servers (12 accelerator kinds) with scarce capacity.

Targets: the exact answer never serves fewer servers of any priority level than the greedy and never costs more
at the same service; 1,000 servers x 12 kinds proven optimal or within 1% gap in under 2 s. Each line prints its
target and whether it holds; nothing is asserted."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.verdict import below, verdict
from harness.synthetic import synthetic_system
from services.core.datafiles import load_system_dir
from services.core.model import Capacity, ServiceModel, SolverKind, SystemData
from services.optimizer.solver import SolverDefaults, SolveResult, solve, units_used

_SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples", "inferno")
EXACT, GREEDY = SolverDefaults(SolverKind.EXACT), SolverDefaults(SolverKind.GREEDY)
VARIANTS = 20
"""Scarce-capacity variants per sample set (seeds 0..19)."""


def _v03(system: SystemData) -> SystemData:
    return replace(system, optimizer=replace(system.optimizer, service_model=ServiceModel.V03))


def scarce_variant(system: SystemData, seed: int) -> SystemData:
    """``system`` with each card type's capacity drawn uniformly between 0 and 1.2 x what the unlimited answer
    uses of it (seeded): capacity binds in most variants."""
    unlimited = solve(replace(system, optimizer=replace(system.optimizer, unlimited=True)), EXACT)
    used = units_used(system, unlimited.solution)
    rng = random.Random(seed)
    return replace(system, capacity=Capacity({kind: int(rng.uniform(0, 1.2) * cards)
                                              for kind, cards in sorted(used.items())}))


def _full_cost(result: SolveResult) -> float:
    return sum(a.cost_per_hour for a in result.solution.allocations.values() if not a.saturated)


@dataclass
class _Family:
    """Tallies over a family of variants."""

    more: int = 0
    fewer: int = 0
    same: int = 0
    dearer: int = 0
    savings: list[float] | None = None
    served_greedy: dict[int, int] | None = None
    served_exact: dict[int, int] | None = None

    def add(self, greedy: SolveResult, exact: SolveResult) -> None:
        g, e = greedy.stats.served_by_priority, exact.stats.served_by_priority
        self.savings = self.savings or []
        self.served_greedy, self.served_exact = self.served_greedy or {}, self.served_exact or {}
        for level in set(g) | set(e):
            self.served_greedy[level] = self.served_greedy.get(level, 0) + g.get(level, 0)
            self.served_exact[level] = self.served_exact.get(level, 0) + e.get(level, 0)
        if any(e.get(level, 0) < n for level, n in g.items()):
            self.fewer += 1
        elif e != g:
            self.more += 1
        else:
            self.same += 1
            cost_g, cost_e = _full_cost(greedy), _full_cost(exact)
            if cost_e > cost_g + 1e-6:
                self.dearer += 1
            if cost_g > 0:
                self.savings.append((cost_g - cost_e) / cost_g)


def _samples(print_line: Callable[[str], None]) -> None:
    for name in ("small", "large"):
        system = _v03(load_system_dir(os.path.join(_SAMPLES, name)).system)
        greedy, exact = solve(system, GREEDY), solve(system, EXACT)
        cost_g, cost_e = greedy.solution.total_cost_per_hour, exact.solution.total_cost_per_hour
        same = greedy.stats.served_by_priority == exact.stats.served_by_priority
        print_line(f"  inferno {name:<6} greedy {cost_g:9.0f}/h  exact {cost_e:9.0f}/h  saving "
                   f"{(cost_g - cost_e) / cost_g:6.1%}  served {sum(exact.stats.served_by_priority.values())}/"
                   f"{sum(greedy.stats.served_by_priority.values())}  exact {exact.stats.outcome}  "
                   f"target exact <= greedy at the same service: {verdict(same and cost_e <= cost_g + 1e-6)}")


def _family(print_line: Callable[[str], None]) -> None:
    for name in ("small", "large"):
        base = _v03(load_system_dir(os.path.join(_SAMPLES, name)).system)
        family = _Family()
        for seed in range(VARIANTS):
            system = scarce_variant(base, seed)
            family.add(solve(system, GREEDY), solve(system, EXACT))
        savings = family.savings or [0.0]
        levels = sorted(family.served_greedy or {})
        greedy_served, exact_served = family.served_greedy or {}, family.served_exact or {}
        served = ", ".join(f"p{level} {greedy_served[level]} -> {exact_served[level]}" for level in levels)
        print_line(f"  {name} x {VARIANTS} scarce variants: exact serves more in {family.more}, the same in "
                   f"{family.same}, fewer in {family.fewer}; at the same service saving mean "
                   f"{statistics.mean(savings):.1%} max {max(savings):.1%}; served per level greedy -> exact: "
                   f"{served}  target never fewer, never dearer: {verdict(family.fewer == 0 and family.dearer == 0)}")


def _timing(print_line: Callable[[str], None]) -> None:
    for servers, cards in ((100, 60), (1000, 600)):
        system = synthetic_system(servers, seed=1, capacity_per_type=cards)
        system = replace(system, optimizer=replace(system.optimizer, time_limit_s=2.0))
        started = time.perf_counter()
        result = solve(system, EXACT)
        total_s = time.perf_counter() - started
        stats = result.stats
        proven = stats.outcome in ("optimal", "trivial")
        gap = 0.0 if proven else (stats.gap if stats.gap is not None else float("inf"))
        shown = f"{gap:7.2%}" if gap != float("inf") else "unknown (a stage ended without a solution)"
        search_s = (stats.exact_solve_time_ms or 0.0) / 1000
        ok = gap <= 0.01 and search_s < 2.0
        served = dict(sorted(stats.served_by_priority.items()))
        print_line(f"  synthetic {servers:>5} servers x 12 kinds, {cards} cards/type: {stats.outcome:<9} "
                   f"worst stage gap {shown}  search {search_s:5.2f} s (solve {total_s:5.2f} s)  served "
                   f"{sum(served.values())} {served}  target optimal or gap <= 1% in < 2 s: {verdict(ok)}  "
                   f"{below(search_s, 2.0, 's')}")


def run(print_line: Callable[[str], None] = print) -> None:
    """Print the exact-vs-greedy comparison and the exact solver's times."""
    print_line("exact vs greedy (same candidates, v0.3 model; cost per hour of fully served servers)")
    _samples(print_line)
    _family(print_line)
    print_line("exact solver time (default model, time limit 2 s)")
    _timing(print_line)


if __name__ == "__main__":
    run()
