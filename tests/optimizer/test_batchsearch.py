"""Batch size as a decision (docs/model.md s4.1): the fewest replicas within the SLOs, ties to the smaller batch;
Inferno's rule in greedy (compatibility) mode; queue-analysis's OptimalConcurrency example."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest

from services.core.model import PerfParms, ServiceModel, SolverKind
from services.optimizer.batchsearch import (
    ONSET_EPSILON,
    ONSET_MAX_BATCH,
    BatchProblem,
    bound_targets,
    fewest_replica_batches,
    optimal_concurrency,
)
from services.optimizer.candidates import build_candidates
from services.optimizer.sizing import Targets, size_replicas
from services.optimizer.solver import SolverDefaults, solve
from services.perfmodel.queueing import ChainBatch
from services.perfmodel.servicetime import ReplicaModel
from tests.optimizer.conftest import GRANITE_G2, server, tiny_system


def replicas_at(model: ReplicaModel, targets: Targets, rate_per_ms: float, batch: int) -> float:
    sized = size_replicas(ChainBatch.build([replace(model, max_batch=batch, max_queue=10 * batch)]), [targets])
    capacity = float(sized.capacity_per_ms[0])
    return math.ceil(rate_per_ms / capacity) if capacity > 0 else math.inf


def test_queue_analysis_optimal_concurrency_example() -> None:
    """queue-analysis's published example (v0.7 service time, queue 128): RPS 3.0, L 128, K 512, alpha 12,
    beta 0.05, gamma 0.0005, targets TTFT 60 ms / ITL 20 ms -> concurrency 48, throughput 2.9494622 req/s,
    ITL-bound concurrency 31."""
    model = ReplicaModel(PerfParms(12.0, 0.05, 0.0005), 128, 512, 256, 128, ServiceModel.V07)
    found = optimal_concurrency(model, Targets(itl_ms=20.0, ttft_ms=60.0))
    assert found.batch == 48
    assert found.throughput_per_ms * 1000 == pytest.approx(2.9494622, rel=1e-5)
    assert found.itl_bound == 31 and found.prefill_bound == 164
    assert found.peak_per_ms * 1000 == pytest.approx(2.9715836, rel=1e-2)
    assert found.evaluations <= 8


def test_optimal_concurrency_with_unreachable_targets_is_batch_zero() -> None:
    model = ReplicaModel(PerfParms(12.0, 0.05, 0.0005), 128, 512, 256, 128, ServiceModel.V07)
    assert optimal_concurrency(model, Targets(itl_ms=5.0)).batch == 0


@pytest.mark.parametrize("rpm", [30.0, 120.0, 600.0, 2400.0])
def test_the_chosen_batch_needs_no_more_replicas_than_the_rule_and_one_less_would(rpm: float) -> None:
    targets = Targets(itl_ms=80.0, ttft_ms=2000.0)
    model = ReplicaModel(GRANITE_G2, 128, 1024, 38, 380)
    rate = rpm / 60_000
    [batch] = fewest_replica_batches([BatchProblem(model, targets, rate, 0, False)])
    best = replicas_at(model, targets, rate, 38)
    assert 1 <= batch <= 38
    assert replicas_at(model, targets, rate, batch) <= best
    if batch > 1:
        assert replicas_at(model, targets, rate, batch - 1) > best


def test_the_default_mode_searches_the_batch_and_greedy_mode_keeps_inferno_rule() -> None:
    system = tiny_system([server("a", rpm=120)])
    exact = build_candidates(replace(system, optimizer=replace(system.optimizer, solver=SolverKind.EXACT)))
    greedy = build_candidates(replace(system, optimizer=replace(system.optimizer, solver=SolverKind.GREEDY)))
    rule = {c.accelerator: c for c in greedy.options["a"]}
    searched = {c.accelerator: c for c in exact.options["a"]}
    assert set(rule) == set(searched)
    assert rule["G2"].max_batch == 38  # 76 x 512 // 1024
    for acc, candidate in searched.items():
        assert candidate.max_batch <= rule[acc].max_batch
        assert candidate.num_replicas <= rule[acc].num_replicas
        assert candidate.max_queue == 10 * candidate.max_batch
    assert any(c.max_batch < rule[a].max_batch for a, c in searched.items())


def test_a_server_max_batch_size_is_kept_as_set() -> None:
    system = tiny_system([server("a", rpm=600, max_batch_size=24)])
    assert {c.max_batch for c in build_candidates(system).options["a"]} == {24}


def test_the_searched_batch_goes_to_the_allocation_and_meets_the_slos() -> None:
    system = tiny_system([server("a", rpm=120)])
    alloc = solve(system, SolverDefaults(SolverKind.EXACT)).solution.allocations["a"]
    assert alloc.max_batch < 38 and alloc.max_queue == 10 * alloc.max_batch
    assert alloc.itl_ms <= 80.0 * (1 + 1e-6) and alloc.ttft_ms <= 2000.0 * (1 + 1e-6)


def _onset_by_brute_force(model: ReplicaModel, targets: Targets) -> int:
    """The least N in 1..256 whose sized throughput is within epsilon / 2 of the throughput at 256, every N sized."""
    chains = ChainBatch.build([replace(model, max_batch=n) for n in range(1, ONSET_MAX_BATCH + 1)])
    capacity = size_replicas(chains, [targets] * ONSET_MAX_BATCH).capacity_per_ms
    capacity = [c if math.isfinite(c) else 0.0 for c in capacity]
    return next(n for n, c in enumerate(capacity, 1) if c >= (1 - ONSET_EPSILON / 2) * capacity[-1])


QA_MODEL = ReplicaModel(PerfParms(12.0, 0.05, 0.0005), 128, 512, 256, 128, ServiceModel.V07)


@pytest.mark.parametrize("targets", [
    Targets(percentiles=(("itl", 90.0, 20.0), ("ttft", 90.0, 60.0))),  # percentiles only: was the ceiling, 256
    Targets(percentiles=(("ttft", 99.0, 200.0),)),  # no ITL target: the bounds bracket nothing from below
    Targets(ttft_ms=200.0),
], ids=["p90-itl-ttft", "p99-ttft", "mean-ttft"])
def test_optimal_concurrency_is_the_onset_every_batch_size_would_give(targets: Targets) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # batch sizes past a row's N (infinite gaps) raise no 0 x inf warning
        found = optimal_concurrency(QA_MODEL, targets)
    assert found.batch == _onset_by_brute_force(QA_MODEL, targets)
    assert found.evaluations <= 12


def test_optimal_concurrency_bounds_take_the_tightest_target_and_a_tighter_percentile_never_raises_them() -> None:
    p90 = optimal_concurrency(QA_MODEL, Targets(percentiles=(("itl", 90.0, 20.0), ("ttft", 90.0, 60.0))))
    assert (p90.itl_bound, p90.prefill_bound) == (31, 164)  # as the same figures stated as means
    assert bound_targets(Targets(itl_ms=25.0, ttft_ms=50.0, percentiles=(("itl", 99.0, 20.0), ("ttft", 50.0, 80.0)))
                         ) == (20.0, 50.0)
    previous = None
    for q in (50.0, 90.0, 95.0, 99.0):  # same figures, higher percentile = tighter targets
        found = optimal_concurrency(QA_MODEL, Targets(percentiles=(("itl", q, 20.0), ("ttft", q, 60.0))))
        assert found.batch > 0
        if previous is not None:
            assert found.peak_per_ms <= previous.peak_per_ms * (1 + 1e-9)
            assert found.throughput_per_ms <= previous.throughput_per_ms * (1 + 1e-9)
            assert found.batch <= previous.batch  # the ITL percentile caps the batch sooner
        previous = found
    previous = None
    for value in (40.0, 30.0, 20.0, 15.0):  # same percentile, smaller figure = tighter: bounds never rise
        found = optimal_concurrency(QA_MODEL, Targets(percentiles=(("itl", 90.0, value), ("ttft", 90.0, value * 3))))
        assert found.itl_bound <= (previous.itl_bound if previous else ONSET_MAX_BATCH)
        previous = found
