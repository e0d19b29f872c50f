"""Readable text for the CLI: the solution table with SLOs and capacity use, and a one-point analysis. Pure."""

from __future__ import annotations

from services.core.model import Solution, SystemData
from services.optimizer.solver import SolveStats, units_used
from services.perfmodel.queueing import PointAnalysis

_HEADER = ("server", "class", "model", "accelerator", "replicas", "batch", "cost/h", "ITL ms (SLO)", "TTFT ms (SLO)",
           "note")


def _slo(value: float, target: float) -> str:
    if target <= 0:
        return f"{value:.2f}"
    mark = "" if value <= target * (1 + 1e-6) else " !"
    return f"{value:.2f} ({target:g}){mark}"


def _rows(system: SystemData, solution: Solution) -> list[tuple[str, ...]]:
    rows = []
    for srv in sorted(system.servers, key=lambda s: s.name):
        svc = system.service_class(srv.service_class)
        target = svc.target_for(srv.model) if svc else None
        itl_slo, ttft_slo = (target.slo_itl_ms, target.slo_ttft_ms) if target else (0.0, 0.0)
        alloc = solution.allocations.get(srv.name)
        if alloc is None:
            reason = solution.unallocated.get(srv.name, "not in the solution")
            rows.append((srv.name, srv.service_class, srv.model, *("-",) * 6, f"UNALLOCATED: {reason}"))
            continue
        notes = [f"saturated, unserved {alloc.unserved_rate_rpm:.1f} req/min"] if alloc.saturated else []
        for metric, q, value in target.percentile_targets() if target else ():  # predicted vs percentile SLO
            notes.append(f"{metric.upper()} P{q} {_slo(getattr(alloc, f'{metric}_ms_p{q}'), value)} ms")
        note = "; ".join(notes)
        rows.append((srv.name, srv.service_class, srv.model, alloc.accelerator or "-", str(alloc.num_replicas),
                     str(alloc.max_batch), f"{alloc.cost_per_hour:.2f}", _slo(alloc.itl_ms, itl_slo),
                     _slo(alloc.ttft_ms, ttft_slo), note))
    return rows


def solver_line(stats: SolveStats) -> str:
    """One line on how the answer was found: the exact solver's outcome, objective, bound, gap and time, or the
    greedy's objective; servers fully allocated per priority level."""
    served = ", ".join(f"p{level} {count}" for level, count in sorted(stats.served_by_priority.items()))
    parts = [f"solver {stats.solver}"]
    if stats.outcome:
        parts.append(stats.outcome)
    if stats.objective is not None:
        parts.append(f"objective {stats.objective:.2f}/h (cost + transition penalty)")
    if stats.best_bound is not None and stats.outcome not in ("", "trivial"):
        parts.append(f"bound {stats.best_bound:.2f}")
    if stats.gap is not None and stats.outcome not in ("", "trivial"):
        parts.append(f"gap {stats.gap * 100:.2f}%")
    if stats.exact_solve_time_ms is not None:
        parts.append(f"search {stats.exact_solve_time_ms:.1f} ms of {stats.time_limit_s:g} s")
    if stats.greedy_objective is not None:
        parts.append(f"greedy objective {stats.greedy_objective:.2f}/h")
    line = ", ".join(parts) + (f"; served per priority: {served}" if served else "")
    if stats.fallback_reason:
        line += f"\nfallback to the greedy answer: {stats.fallback_reason}"
    return line


def solution_table(system: SystemData, solution: Solution, solver: str = "", stats: SolveStats | None = None) -> str:
    """The allocation per server against its SLOs ("!" marks a miss), total cost, cards used per type, and how
    the solver found it."""
    rows = [_HEADER, *_rows(system, solution)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"total cost per hour: {solution.total_cost_per_hour:.2f}"
                 f"   allocated {len(solution.allocations)}, unallocated {len(solution.unallocated)}"
                 + (f"   solver {solver}" if solver else ""))
    used = units_used(system, solution)
    kinds = sorted(set(used) | set(system.capacity.counts))
    if kinds:
        limited = "" if not system.optimizer.unlimited else " (unlimited mode: capacity not enforced)"
        lines.append("capacity used" + limited + ": "
                     + ", ".join(f"{k} {used.get(k, 0)}/{system.capacity.count(k)}" for k in kinds))
    if stats is not None:
        lines.append(solver_line(stats))
    return "\n".join(lines) + "\n"


def analysis_text(point: PointAnalysis, max_rate_per_ms: float, replicas: int, needed: int | None) -> str:
    """What-if figures of one replica at its share of the load, the largest rate meeting the targets, and the
    replicas the load needs (``needed`` None: no number of replicas meets the targets)."""
    per_min = 60_000.0
    lines = [
        f"arrival rate per replica:  {point.rate_per_ms * per_min:.3f} req/min  ({replicas} replica(s))",
        f"throughput per replica:    {point.throughput_per_ms * per_min:.3f} req/min  (loss {point.blocking:.3g})",
        f"utilization:               {point.utilization:.4f}",
        f"mean wait:                 {point.wait_ms:.3f} ms",
        f"mean service time:         {point.service_ms:.3f} ms",
        f"ITL:                       {point.itl_ms:.4f} ms",
        f"TTFT:                      {point.ttft_ms:.4f} ms",
        f"stable limit 0.999 mu(N):  {point.max_rate_per_ms * per_min:.3f} req/min per replica",
    ]
    if max_rate_per_ms != max_rate_per_ms:  # NaN
        lines.append("max rate meeting targets:  none (targets unreachable even at the lightest load)")
    else:
        lines.append(f"max rate meeting targets:  {max_rate_per_ms * per_min:.3f} req/min per replica")
    shown = needed if needed is not None else "none possible (targets unreachable)"
    lines.append(f"replicas needed:           {shown}")
    return "\n".join(lines) + "\n"
