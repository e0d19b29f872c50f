"""The fast percentile sizing (chain metrics reused, only the distribution a target asks for, bisection stopped
once its bracket is two adjacent floats) gives the straightforward path's answers: here the straightforward
path is written out (every figure from predict_percentiles / latency_ms, one row at a time, all 100 bisection
steps, batch sizes tried on chains built at that size) and compared on a grid of models, batch sizes, targets
and loads: the same replica counts and batch sizes, rates and percentiles equal to float tolerance. The batch
search's sizing at the largest batch stops each bisection once the replica count is known (replica_counts): its
counts, the batch sizes and the demo's solutions (harness/scenario.py) at several loads are those of the fully
bisected sizing."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.scenario import Scenario, static_system
from services.core import model as m
from services.core.model import PerfParms, ServiceModel
from services.optimizer import batchsearch, sizing
from services.optimizer.batchsearch import BatchProblem, fewest_replica_batches, with_batch
from services.optimizer.percentiles import percentile_per_row, predict_percentiles
from services.optimizer.sizing import (
    HIGH_FRACTION,
    LOW_FRACTION,
    MAX_STEPS,
    REL_TOLERANCE,
    TPS_FRACTION,
    Demand,
    Targets,
    replica_counts,
    replicas_needed,
    size_replicas,
)
from services.optimizer.solver import solve
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_ms
from services.perfmodel.servicetime import ReplicaModel

PERF = PerfParms(alpha_ms=17.15, beta_ms=0.034, gamma_ms=0.0010625)
MODELS = {
    "v1": ReplicaModel(PERF, 128, 64, 4, 4000, ServiceModel.V1, out_c2=1.0),
    "v1-long": ReplicaModel(PERF, 1024, 256, 4, 4000, ServiceModel.V1, out_c2=0.5, arrival_c2=0.5),
    "v0.7": ReplicaModel(PERF, 512, 128, 4, 40, ServiceModel.V07),
    "v0.3": ReplicaModel(PERF, 128, 64, 4, 40, ServiceModel.V03),
}
BATCHES = (1, 4, 16, 64, 256)
TARGETS = (
    Targets(percentiles=(("ttft", 90.0, 1000.0),)),
    Targets(percentiles=(("itl", 90.0, 25.0),)),
    Targets(itl_ms=25.0, ttft_ms=1000.0, percentiles=(("ttft", 90.0, 1000.0), ("itl", 90.0, 30.0))),
    Targets(ttft_ms=400.0, percentiles=(("ttft", 99.0, 600.0), ("itl", 50.0, 20.0))),
    Targets(tps=50.0, blocking=0.01, percentiles=(("itl", 99.0, 40.0), ("ttft", 50.0, 300.0))),
    Targets(percentiles=(("itl", 90.0, 15.0),)),  # below one iteration at any batch (alpha 17.15 ms): infeasible
)
LOADS_PER_MS = (0.0005, 0.003, 0.02, 0.1)
SCENARIO = Scenario()


def _figure(chains: ChainBatch, row: int, rate: float, kind: str, level: float) -> float:
    """One figure of one row, the straightforward way."""
    rows, rates = np.array([row]), np.array([rate])
    if kind in ("itl", "ttft") and level > 0:
        got = predict_percentiles(chains, rates, [level], rows)
        return float((got.itl_ms if kind == "itl" else got.ttft_ms)[0, 0])
    metrics = chain_metrics(chains, rates, rows)
    itl, ttft = latency_ms(chains, metrics, rows)
    return float({"itl": itl, "ttft": ttft, "blocking": metrics.blocking}[kind][0])


def _rate(chains: ChainBatch, row: int, kind: str, level: float, target: float) -> float:
    """The largest rate meeting one target (sizing.bisect_rates' rules, all MAX_STEPS steps); NaN if none."""
    def close(value: float) -> bool:
        return abs(value - target) <= REL_TOLERANCE * target

    lo, hi = LOW_FRACTION * chains.mu_one_per_ms[row], HIGH_FRACTION * chains.mu_full_per_ms[row]
    f_lo, f_hi = _figure(chains, row, lo, kind, level), _figure(chains, row, hi, kind, level)
    if close(f_hi) or target > f_hi:
        return float(hi)
    if close(f_lo):
        return float(lo)
    if target < f_lo:
        return math.nan
    result = math.nan
    for _ in range(MAX_STEPS):
        mid = 0.5 * (lo + hi)
        value = _figure(chains, row, mid, kind, level)
        result = mid
        if value < target:
            lo = mid
        else:
            hi = mid
        if close(value):
            break
    return float(result)


def _capacity(model: ReplicaModel, targets: Targets) -> tuple[float, float]:
    """(sized rate, capacity) of one replica, requests/ms, NaN when infeasible: size_replicas written out."""
    chains = ChainBatch.build([model])
    limit = HIGH_FRACTION * chains.mu_full_per_ms[0]
    rates = [TPS_FRACTION * limit if targets.tps > 0 else limit]
    wanted = [("itl", 0.0, targets.itl_ms), ("ttft", 0.0, targets.ttft_ms), ("blocking", 0.0, targets.blocking),
              *((metric, q, value) for metric, q, value in targets.percentiles)]
    rates += [_rate(chains, 0, kind, level, value) for kind, level, value in wanted if value > 0]
    if any(math.isnan(r) for r in rates):
        return math.nan, math.nan
    rate = min(rates)
    return rate, float(chain_metrics(chains, np.array([rate])).throughput_per_ms[0])


def _replicas(load: float, capacity: float, floor: int = 0) -> float:
    return max(math.ceil(load / capacity), floor, 1) if capacity > 0 else math.inf


def _meets(model: ReplicaModel, targets: Targets, rate: float) -> bool:
    """One replica of ``model`` at ``rate`` is within its stable limit and meets every target."""
    chains = ChainBatch.build([model])
    slack = 1 + REL_TOLERANCE
    limit = HIGH_FRACTION * chains.mu_full_per_ms[0] * (TPS_FRACTION if targets.tps > 0 else 1.0)
    wanted = [("itl", 0.0, targets.itl_ms), ("ttft", 0.0, targets.ttft_ms), ("blocking", 0.0, targets.blocking),
              *((metric, q, value) for metric, q, value in targets.percentiles)]
    return rate <= limit * slack and all(_figure(chains, 0, rate, kind, level) <= value * slack
                                         for kind, level, value in wanted if value > 0)


def _fewest_replica_batch(problem: BatchProblem) -> int:
    """fewest_replica_batches' answer for one problem, each batch size tried on chains built at that size."""
    top = problem.model
    best = _replicas(problem.rate_per_ms, _capacity(top, problem.targets)[1], problem.min_replicas)
    if not math.isfinite(best):
        return top.max_batch
    lo, hi = 1, top.max_batch
    while lo < hi:
        mid = (lo + hi) // 2
        if _meets(with_batch(top, mid, problem.fixed_queue), problem.targets, problem.rate_per_ms / best):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _grid() -> list[tuple[ReplicaModel, Targets]]:
    return [(replace(model, max_batch=batch, max_queue=batch * model.max_queue // model.max_batch), targets)
            for model in MODELS.values() for batch in BATCHES for targets in TARGETS]


def test_sized_rates_and_replica_counts_are_the_straightforward_ones() -> None:
    grid = _grid()
    sizing = size_replicas(ChainBatch.build([model for model, _ in grid]), [targets for _, targets in grid])
    feasible = 0
    for k, (model, targets) in enumerate(grid):
        rate, capacity = _capacity(model, targets)
        case = (model.service_model, model.max_batch, targets)
        assert math.isnan(rate) == math.isnan(sizing.rate_per_ms[k]), case
        if math.isnan(rate):
            continue
        feasible += 1
        assert sizing.rate_per_ms[k] == pytest.approx(rate, rel=1e-9), case
        assert sizing.capacity_per_ms[k] == pytest.approx(capacity, rel=1e-9), case
        for load in LOADS_PER_MS:
            assert _replicas(load, float(sizing.capacity_per_ms[k])) == _replicas(load, capacity), (case, load)
    assert 0 < feasible < len(grid)  # the grid has both kinds of rows


def test_searched_batch_sizes_are_the_straightforward_ones() -> None:
    problems = [BatchProblem(replace(model, max_batch=batch, max_queue=batch * model.max_queue // model.max_batch),
                             targets, load, floor, fixed)
                for (model, batch, fixed) in ((MODELS["v1"], 256, False), (MODELS["v1-long"], 64, False),
                                              (MODELS["v0.7"], 64, True), (MODELS["v0.3"], 16, False))
                for targets in TARGETS for load, floor in ((0.0005, 0), (0.003, 2), (0.02, 0), (0.1, 0))]
    got = fewest_replica_batches(problems)
    want = [_fewest_replica_batch(p) for p in problems]
    assert got == want
    assert len(set(want)) > 3  # the grid reaches many batch sizes


def test_percentiles_per_row_with_reused_metrics_are_predict_percentiles() -> None:
    chains = ChainBatch.build([model for model, _ in _grid()[::len(TARGETS)]])
    rows = np.repeat(np.arange(len(chains)), 4)
    rate = np.tile([0.1, 0.5, 0.9, 0.999], len(chains)) * chains.mu_full_per_ms[rows]
    itl = np.tile([True, False], len(rows) // 2)
    level = np.tile([50.0, 90.0, 90.0, 99.0], len(chains))
    metrics = chain_metrics(chains, rate, rows)
    for reused in (None, metrics):
        got = percentile_per_row(chains, rows, rate, itl, level, reused)
        for k, row in enumerate(rows):
            full = predict_percentiles(chains, rate[k:k + 1], [level[k]], np.array([row]))
            want = (full.itl_ms if itl[k] else full.ttft_ms)[0, 0]
            assert got[k] == pytest.approx(want, rel=1e-12), (k, row, itl[k], level[k])


def _exact_counts(chains: ChainBatch, targets: list[Targets], demand: Demand) -> np.ndarray:
    """The replica counts of the fully bisected sizing (size_replicas' capacity)."""
    return replicas_needed(demand.load_per_ms, size_replicas(chains, targets).capacity_per_ms, demand.min_replicas)


def test_replica_counts_stopped_once_known_are_those_of_the_full_sizing() -> None:
    grid = _grid()
    chains = ChainBatch.build([model for model, _ in grid])
    targets = [t for _, t in grid]
    full = size_replicas(chains, targets)
    stopped = 0
    for load in (*LOADS_PER_MS, 0.0):
        for floor in (0, 3):
            demand = Demand(np.full(len(grid), load), np.full(len(grid), float(floor)))
            got = replica_counts(chains, targets, demand)
            assert got.tolist() == _exact_counts(chains, targets, demand).tolist(), (load, floor)
            sized = sizing._sized_rates(chains, targets, demand)
            assert np.array_equal(np.isnan(sized), np.isnan(full.rate_per_ms))
            stopped += int(np.sum(sized[~np.isnan(sized)] != full.rate_per_ms[~np.isnan(sized)]))
    assert stopped > 0  # some bisections did stop before the full answer


def _demo_system(rpm: dict[str, float]) -> m.SystemData:
    servers = tuple(m.Server(d.name, d.service_class, d.model, current=m.Allocation(
        "G2", 1, d.max_batch, load=m.Load(rpm[d.name], SCENARIO.in_tokens, SCENARIO.out_tokens, 0.0)))
        for d in SCENARIO.servers)
    return replace(static_system(SCENARIO), servers=servers)


def _answers(system: m.SystemData) -> dict[str, tuple[str, int, int]]:
    allocations = solve(system).solution.allocations
    return {name: (a.accelerator, a.num_replicas, a.max_batch) for name, a in allocations.items()}


def test_batches_and_the_demo_solution_are_those_of_the_full_sizing(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = [BatchProblem(replace(model, max_batch=batch, max_queue=batch * model.max_queue // model.max_batch),
                             targets, load, floor, False)
                for model in MODELS.values() for batch in (16, 256) for targets in TARGETS
                for load, floor in ((0.0005, 0), (0.003, 2), (0.02, 0), (0.1, 0), (0.4, 1))]
    scales = (0.3, 1.0, 2.0, 3.0, 4.5, 6.0)
    base = {d.name: d.base_rps * 60.0 for d in SCENARIO.servers}
    systems = [_demo_system({name: rpm * scale for name, rpm in base.items()}) for scale in scales]
    systems += [_demo_system({**base, SCENARIO.stepped: rpm}) for rpm in (244.0, 270.0, 290.0, 300.0, 330.0)]
    stopped_batches = fewest_replica_batches(problems)
    stopped_answers = [_answers(system) for system in systems]
    monkeypatch.setattr(batchsearch, "replica_counts", _exact_counts)
    assert stopped_batches == fewest_replica_batches(problems)
    assert stopped_answers == [_answers(system) for system in systems]
    assert len({a[SCENARIO.stepped][1:] for a in stopped_answers}) > 3  # several replica counts and batches
