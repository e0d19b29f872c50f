"""The exact allocation (docs/model.md s9): CP-SAT (OR-Tools) over the candidates the optimizer builds.

One boolean per (server, candidate); at most one candidate per server; the cards of each type within capacity.
Objective, lexicographic: the most servers of priority level 1 allocated, then of level 2, ..., then the least
cost plus transition penalty (the candidates' ``value``, in cents). The greedy answer is the hint and the floor:
no level serves fewer servers than it does, so the answer is never worse than the greedy's at any level.

build_model() builds the model from a candidate list and the capacity, and returns the variables, so that a
caller can add constraints (a robust capacity row, say) before solve_exact() runs it. Pure: OR-Tools keeps its
own time (the time limit), nothing here reads the clock, the environment or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from services.optimizer.candidates import Candidate
from services.optimizer.robust import RobustSet, add_robust_rows

CENTS = 100
"""Objective values are integers: cost units per hour x 100."""
WORKERS = 1
"""CP-SAT search workers: one, so that the same input gives the same answer (several workers race)."""
MIN_STAGE_S = 0.001
"""A stage with less time left than this is not started."""
COUNT_SHARE = 0.5
"""A count stage may use at most this share of the time left, so the cost stage always gets some."""


class Outcome:
    """How the exact answer came about (the ``outcome`` of the stats)."""

    OPTIMAL = "optimal"
    """Proven optimal (every lexicographic stage)."""
    FEASIBLE = "feasible"
    """Better than the greedy answer, not proven optimal when the time limit ended the search."""
    FALLBACK = "fallback"
    """The greedy answer: the exact search neither improved on it nor proved it optimal in time."""
    TRIVIAL = "trivial"
    """Every server's cheapest candidate fits the capacity together: optimal without a search."""


@dataclass(slots=True)
class AllocationModel:
    """A CP-SAT model of the allocation: ``choices[server]`` = [(candidate, its boolean)], the number of servers
    allocated per priority level, and the objective's cost term (cents per hour).

    Add constraints to ``model`` before solving; they hold for every stage.
    """

    model: cp_model.CpModel
    choices: dict[str, list[tuple[Candidate, cp_model.IntVar]]]
    served: dict[int, cp_model.LinearExprT]
    value_cents: cp_model.LinearExprT
    level_size: dict[int, int]


@dataclass(frozen=True, slots=True)
class ExactResult:
    """The chosen candidate per allocated server and how the search went.

    ``objective`` and ``best_bound`` are cost plus transition penalty per hour (the last stage's);
    ``gap`` = (objective - bound) / |objective| (0 when proven); ``wall_time_s`` sums CP-SAT's stages.
    """

    chosen: Mapping[str, Candidate]
    outcome: str
    objective: float
    best_bound: float
    gap: float
    wall_time_s: float
    served_by_priority: Mapping[int, int]
    reason: str = ""
    stages: tuple[str, ...] = field(default_factory=tuple)


def _cents(value: float) -> int:
    return int(round(value * CENTS))


def useful_candidates(options: Sequence[Candidate], capacity: Mapping[str, int]) -> list[Candidate]:
    """``options`` without those that cannot fit the capacity alone and those dominated by another of the same
    card type (no more cards, no more value; the earlier in ``options`` wins a tie). Keeps ``options``' order."""
    fitting = [c for c in options if c.units <= 0 or c.units <= capacity.get(c.accelerator_type, 0)]
    kept: list[Candidate] = []
    for cand in fitting:
        free = cand.units <= 0
        if any((other.units <= 0 or (other.accelerator_type == cand.accelerator_type and other.units <= cand.units
                                     and not free)) and _cents(other.value) <= _cents(cand.value) for other in kept):
            continue
        kept.append(cand)
    return kept


def build_model(options: Mapping[str, Sequence[Candidate]], priorities: Mapping[str, int],
                capacity: Mapping[str, int], robust: RobustSet | None = None) -> AllocationModel:
    """The allocation model (docs/model.md s9): x[s, k] boolean, sum_k x[s, k] <= 1 per server s, and per card
    type t: sum of units x <= capacity[t] (a type not in ``capacity`` has none). ``options`` should already be
    pruned (useful_candidates). With ``robust``, each server also gets the Gamma-robust row of docs/model.md
    s10.2 (its chosen candidate's replicas carry its rate when Gamma of its groups run at their worst case)."""
    model = cp_model.CpModel()
    choices: dict[str, list[tuple[Candidate, cp_model.IntVar]]] = {}
    per_type: dict[str, list[tuple[int, cp_model.IntVar]]] = {}
    served: dict[int, list[cp_model.IntVar]] = {}
    level_size: dict[int, int] = {}
    value_terms: list[tuple[int, cp_model.IntVar]] = []
    for s_index, name in enumerate(sorted(options)):
        pairs = []
        level = priorities[name]
        if options[name]:
            level_size[level] = level_size.get(level, 0) + 1
        for k, cand in enumerate(options[name]):
            x = model.new_bool_var(f"x{s_index}_{k}")
            pairs.append((cand, x))
            served.setdefault(level, []).append(x)
            value_terms.append((_cents(cand.value), x))
            if cand.units > 0:
                per_type.setdefault(cand.accelerator_type, []).append((cand.units, x))
        if pairs:
            model.add_at_most_one(x for _, x in pairs)
        choices[name] = pairs
    for kind, terms in sorted(per_type.items()):
        model.add(cp_model.LinearExpr.weighted_sum([x for _, x in terms], [u for u, _ in terms])
                  <= capacity.get(kind, 0))
    if robust is not None:
        add_robust_rows(model, choices, robust)
    value = cp_model.LinearExpr.weighted_sum([x for _, x in value_terms], [c for c, _ in value_terms])
    return AllocationModel(model, choices, {p: sum(xs) for p, xs in served.items()}, value, level_size)


def _counts(chosen: Mapping[str, Candidate], priorities: Mapping[str, int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for name in chosen:
        counts[priorities[name]] = counts.get(priorities[name], 0) + 1
    return counts


def _value(chosen: Mapping[str, Candidate]) -> float:
    return sum(_cents(c.value) for c in chosen.values()) / CENTS


def _rank(chosen: Mapping[str, Candidate], priorities: Mapping[str, int], levels: Sequence[int]) -> tuple:
    """Lexicographic key, smaller is better: (-served at level 1, -served at level 2, ..., value)."""
    counts = _counts(chosen, priorities)
    return (*(-counts.get(p, 0) for p in levels), _cents(_value(chosen)))


@dataclass(slots=True)
class _Run:
    """The stages' shared state: the model, the best assignment so far, time used, proofs."""

    am: AllocationModel
    time_limit_s: float
    workers: int
    best: dict[str, Candidate]
    used_s: float = 0.0
    proven: bool = True
    solved: bool = False
    """Whether a CP-SAT stage found a solution (a hint alone is not an exact answer)."""
    guide: dict[str, Candidate] | None = None
    """A hint for the next stage only, maybe infeasible (CP-SAT repairs it); never an answer."""
    gap: float = 0.0
    """The largest relative gap of a stage the time limit stopped."""
    stages: list[str] = field(default_factory=list)

    def hint(self) -> None:
        guide = self.guide if self.guide is not None else self.best
        self.guide = None
        self.am.model.clear_hints()
        for name, pairs in self.am.choices.items():
            pick = guide.get(name)
            for cand, x in pairs:
                self.am.model.add_hint(x, cand is pick)

    def stage(self, label: str, objective: cp_model.LinearExprT, maximize: bool, share: float = 1.0
              ) -> tuple[cp_model.CpSolver, int] | None:
        """Run one stage (at most ``share`` of the time left); returns (solver, status) with a solution, or None
        (no time left / none found). A stage stopped by the limit records its relative gap."""
        left = (self.time_limit_s - self.used_s) * share
        if left < MIN_STAGE_S:
            self.proven = False
            self.gap = float("inf")
            self.stages.append(f"{label}: no time left")
            return None
        self.hint()
        if maximize:
            self.am.model.maximize(objective)
        else:
            self.am.model.minimize(objective)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = left
        solver.parameters.num_workers = self.workers
        status = solver.solve(self.am.model)
        self.used_s += solver.wall_time
        self.stages.append(f"{label}: {solver.status_name(status).lower()} in {solver.wall_time * 1000:.1f} ms")
        if status == cp_model.OPTIMAL:
            pass
        elif status == cp_model.FEASIBLE:
            self.proven = False
            found, bound = solver.objective_value, solver.best_objective_bound
            self.gap = max(self.gap, abs(bound - found) / max(abs(found), 1.0))
        else:
            self.proven = False
            self.gap = float("inf")  # the limit came before any solution of this stage
            return None
        self.solved = True
        self.best = {name: cand for name, pairs in self.am.choices.items() for cand, x in pairs
                     if solver.boolean_value(x)}
        return solver, status


def solve_exact(options: Mapping[str, Sequence[Candidate]], priorities: Mapping[str, int],
                capacity: Mapping[str, int], greedy: Mapping[str, Candidate], time_limit_s: float,
                extra: Callable[[AllocationModel], None] | None = None, workers: int = WORKERS,
                robust: RobustSet | None = None) -> ExactResult:
    """Allocate ``options`` (server -> candidates) against ``capacity`` exactly (docs/model.md s9).

    ``greedy`` (server -> chosen candidate, fully allocated servers only) is the hint and the floor of every
    level; ``extra`` may add constraints to the model (the greedy answer must satisfy them, or the floor may
    make the model infeasible: the answer is then the fallback). ``time_limit_s`` bounds all stages together.
    Never raises for a hard instance: the greedy answer comes back flagged ``fallback``. ``robust`` adds the
    robust rows (build_model); its candidates satisfy them by construction, so the greedy answer and the
    trivial answer over them do too.
    """
    pruned = {name: useful_candidates(opts, capacity) for name, opts in options.items()}
    levels = sorted({priorities[name] for name, opts in pruned.items() if opts})
    cheapest = {name: opts[0] for name, opts in pruned.items() if opts}
    if extra is None and _fits(cheapest, capacity):
        value = _value(cheapest)
        return ExactResult(cheapest, Outcome.TRIVIAL, value, value, 0.0, 0.0, _counts(cheapest, priorities))
    am = build_model(pruned, priorities, capacity, robust)
    if extra is not None:
        extra(am)
    floor = _counts(greedy, priorities)
    for level in levels:
        am.model.add(am.served[level] >= floor.get(level, 0))
    hinted = {name: cand for name, cand in greedy.items() if any(cand is c for c, _ in am.choices.get(name, ()))}
    run = _Run(am, time_limit_s, workers, dict(hinted))
    open_levels = []
    for level in levels:
        if floor.get(level, 0) >= am.level_size[level]:
            am.model.add(am.served[level] == am.level_size[level])  # the greedy serves the whole level
        else:
            open_levels.append(level)
    found = _count_stages(run, open_levels, pruned, priorities, capacity, robust is None and extra is None)
    final = run.stage("cost", am.value_cents, maximize=False) if found else None
    return _result(run, final, greedy, priorities, levels)


def _count_stages(run: _Run, levels: Sequence[int], options: Mapping[str, Sequence[Candidate]],
                  priorities: Mapping[str, int], capacity: Mapping[str, int], repack: bool) -> bool:
    """Maximise the servers allocated per level, one stage per level in priority order, each count fixed before
    the next (a stage gets at most COUNT_SHARE of the time left). The hint is the greedy answer or, when it
    serves more, a repacking of it. Returns False when a stage found no solution."""
    am = run.am
    if repack and levels:
        better = _repack(run.best, options, priorities, capacity, levels)
        floor = _counts(run.best, priorities)
        if _rank(better, priorities, levels) < _rank(run.best, priorities, levels) and \
                all(_counts(better, priorities).get(p, 0) >= n for p, n in floor.items()):
            run.best = better
    fixed: dict[int, int] = {}
    floor = _counts(run.best, priorities)
    for level in levels:
        if repack:
            rounded = _lp_hint(options, priorities, capacity, level, fixed, floor)
            extended = _extend(run.best, options, priorities, capacity, level)
            candidates = [h for h in (rounded, extended) if h is not None
                          and all(_counts(h, priorities).get(p, 0) == n for p, n in fixed.items())]
            best = max(candidates, key=lambda h: _counts(h, priorities).get(level, 0), default=None)
            if best is not None and _counts(best, priorities).get(level, 0) > \
                    _counts(run.best, priorities).get(level, 0):
                run.guide = best
        if run.stage(f"level {level}", am.served[level], maximize=True, share=COUNT_SHARE) is None:
            return False
        fixed[level] = _counts(run.best, priorities).get(level, 0)
        am.model.add(am.served[level] == fixed[level])
    return True


class _Packer:
    """Greedy placement for hints: ``chosen`` so far and the cards ``left`` of each type; a server is placed
    with its fitting candidate taking the least share of what is left of its card type (then the least value)."""

    def __init__(self, capacity: Mapping[str, int], start: Mapping[str, Candidate] | None = None) -> None:
        self.left = dict(capacity)
        self.chosen: dict[str, Candidate] = {}
        for name, cand in (start or {}).items():
            self._take(name, cand)

    def _take(self, name: str, cand: Candidate) -> None:
        self.chosen[name] = cand
        if cand.units > 0:
            self.left[cand.accelerator_type] = self.left.get(cand.accelerator_type, 0) - cand.units

    def share(self, c: Candidate) -> float:
        return 0.0 if c.units <= 0 else c.units / max(self.left.get(c.accelerator_type, 0), 1e-9)

    def footprint(self, cands: Sequence[Candidate]) -> float:
        """The least share any of ``cands`` would take (inf for none)."""
        return min((self.share(c) for c in cands), default=float("inf"))

    def place(self, name: str, cands: Sequence[Candidate]) -> bool:
        """Place ``name`` with one of ``cands`` if any fits; returns whether it was placed."""
        fitting = [c for c in cands if c.units <= 0 or c.units <= self.left.get(c.accelerator_type, 0)]
        if fitting:
            self._take(name, min(fitting, key=lambda c: (self.share(c), c.value)))
        return bool(fitting)


def _extend(start: Mapping[str, Candidate], options: Mapping[str, Sequence[Candidate]],
            priorities: Mapping[str, int], capacity: Mapping[str, int], level: int) -> dict[str, Candidate]:
    """``start`` plus the servers of ``level`` it leaves out that still fit, smallest share of the cards left
    first (only adds: every other level keeps its count)."""
    packer = _Packer(capacity, start)
    rest = [n for n in options if priorities[n] == level and n not in packer.chosen and options[n]]
    for name in sorted(rest, key=lambda n: (packer.footprint(options[n]), n)):
        packer.place(name, options[name])
    return packer.chosen


def _lp_hint(options: Mapping[str, Sequence[Candidate]], priorities: Mapping[str, int],
             capacity: Mapping[str, int], level: int, fixed: Mapping[int, int], floor: Mapping[int, int]
             ) -> dict[str, Candidate] | None:
    """A hint for maximising ``level``'s count: the LP relaxation (GLOP) rounded down, then repaired by adding
    servers (levels already fixed first, then ``level``, then the rest), smallest share of the cards left first.
    None when the LP fails."""
    lp = pywraplp.Solver.CreateSolver("GLOP")
    if lp is None:
        return None
    names = sorted(n for n, opts in options.items() if opts)
    xs: dict[str, list[tuple[Candidate, pywraplp.Variable]]] = {}
    per_type: dict[str, list[tuple[int, pywraplp.Variable]]] = {}
    by_level: dict[int, list[pywraplp.Variable]] = {}
    for i, name in enumerate(names):
        pairs = [(c, lp.NumVar(0.0, 1.0, f"x{i}_{k}")) for k, c in enumerate(options[name])]
        lp.Add(sum(x for _, x in pairs) <= 1)
        for c, x in pairs:
            by_level.setdefault(priorities[name], []).append(x)
            if c.units > 0:
                per_type.setdefault(c.accelerator_type, []).append((c.units, x))
        xs[name] = pairs
    for kind, terms in per_type.items():
        lp.Add(sum(u * x for u, x in terms) <= capacity.get(kind, 0))
    for p, xv in by_level.items():
        if p in fixed:
            lp.Add(sum(xv) == fixed[p])
        elif p != level:
            lp.Add(sum(xv) >= floor.get(p, 0))
    lp.Maximize(sum(by_level.get(level, [])))
    if lp.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    chosen = {name: c for name, pairs in xs.items() for c, x in pairs if x.solution_value() > 1 - 1e-6}
    packer = _Packer(capacity, chosen)
    order = sorted((n for n in names if n not in chosen),
                   key=lambda n: (0 if priorities[n] in fixed else 1 if priorities[n] == level else 2,
                                  priorities[n], n))
    counts = _counts(chosen, priorities)
    for name in order:
        if counts.get(priorities[name], 0) >= fixed.get(priorities[name], len(names)):
            continue  # a fixed level keeps its count
        if packer.place(name, options[name]):
            counts[priorities[name]] = counts.get(priorities[name], 0) + 1
    return packer.chosen


def _repack(start: Mapping[str, Candidate], options: Mapping[str, Sequence[Candidate]],
            priorities: Mapping[str, int], capacity: Mapping[str, int], levels: Sequence[int]
            ) -> dict[str, Candidate]:
    """A hint serving many servers: ``start``'s servers first, then the others level by level, smallest first,
    each with the candidate taking the least share of what is left of its card type."""
    packer = _Packer(capacity)
    for name in sorted(start, key=lambda n: (priorities[n], packer.footprint(options[n]), n)):
        packer.place(name, options[name])
    for level in sorted({priorities[n] for n in options}):
        if level in levels:
            for name in sorted((n for n in options if priorities[n] == level and n not in start and options[n]),
                               key=lambda n: (packer.footprint(options[n]), n)):
                packer.place(name, options[name])
    return packer.chosen


def _fits(chosen: Mapping[str, Candidate], capacity: Mapping[str, int]) -> bool:
    used: dict[str, int] = {}
    for cand in chosen.values():
        if cand.units > 0:
            used[cand.accelerator_type] = used.get(cand.accelerator_type, 0) + cand.units
    return all(units <= capacity.get(kind, 0) for kind, units in used.items())


def _result(run: _Run, final: tuple[cp_model.CpSolver, int] | None, greedy: Mapping[str, Candidate],
            priorities: Mapping[str, int], levels: Sequence[int]) -> ExactResult:
    """The exact answer when it is proven or better than the greedy's, else the greedy's flagged fallback. The
    gap is the cost stage's, or the largest of a stage the time limit stopped."""
    stages = tuple(run.stages)
    chosen = run.best
    bound = final[0].best_objective_bound / CENTS if final is not None else float("-inf")
    if run.proven and final is not None:
        objective = final[0].objective_value / CENTS
        return ExactResult(dict(chosen), Outcome.OPTIMAL, objective, bound, 0.0, run.used_s,
                           _counts(chosen, priorities), "", stages)
    if run.solved and _rank(chosen, priorities, levels) < _rank(greedy, priorities, levels):
        objective = _value(chosen)
        gap = run.gap if final is None else max(run.gap, abs(objective - bound) / max(abs(objective), 1e-9))
        return ExactResult(dict(chosen), Outcome.FEASIBLE, objective, bound, gap, run.used_s,
                           _counts(chosen, priorities), "time limit reached before the optimum was proven", stages)
    value = _value(greedy)
    gap = abs(value - bound) / max(abs(value), 1e-9) if final is not None else float("inf")
    timed_out = run.used_s >= run.time_limit_s - MIN_STAGE_S
    reason = ("the time limit ended the search before it improved on the greedy answer" if timed_out
              else "the exact search found no better answer and could not prove the greedy one optimal")
    return ExactResult(dict(greedy), Outcome.FALLBACK, value, bound, gap, run.used_s, _counts(greedy, priorities),
                       reason, stages)
