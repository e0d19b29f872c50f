"""Sizing on percentile SLOs (docs/model.md s3.2, s5): the bisection on the percentile, tighter never fewer
replicas, classes with percentile targets in the candidates, analyze's percentile keys."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from services.optimizer.cli import main
from services.optimizer.percentiles import predict_percentiles
from services.optimizer.sizing import Targets, size_replicas
from services.optimizer.solver import solve
from services.perfmodel.queueing import ChainBatch

PERF = ["--alpha", "17.15", "--beta", "0.034", "--gamma", "0.0010625", "--max-batch", "4", "--in-tokens", "128",
        "--out-tokens", "64"]


def _model():
    from services.core.model import PerfParms, ServiceModel
    from services.perfmodel.servicetime import ReplicaModel
    return ReplicaModel(PerfParms(17.15, 0.034, 0.0010625), 128, 64, 4, 4000, ServiceModel.V1, out_c2=1.0)


def test_sized_rate_puts_the_percentile_on_its_target() -> None:
    chains = ChainBatch.build([_model()])
    sizing = size_replicas(chains, [Targets(percentiles=(("ttft", 90.0, 500.0),))])
    got = predict_percentiles(chains, sizing.rate_per_ms, [90])
    assert got.ttft_ms[0, 0] == pytest.approx(500.0, rel=1e-5)


def _replicas(targets: Targets, total_per_ms: float = 0.02) -> int:
    capacity = float(size_replicas(ChainBatch.build([_model()]), [targets]).capacity_per_ms[0])
    return math.ceil(total_per_ms / capacity) if capacity > 0 else 10**9


@pytest.mark.parametrize("metric, values", [("ttft", [150.0, 400.0, 1000.0, 3000.0]),
                                            ("itl", [18.1, 18.3, 22.2, 23.0])])
def test_a_tighter_percentile_never_gives_fewer_replicas(metric: str, values: list[float]) -> None:
    for value in values:  # same value, a higher percentile is tighter
        needed = [_replicas(Targets(percentiles=((metric, float(q), value),))) for q in (50, 90, 95, 99)]
        assert needed == sorted(needed), (value, needed)
    for q in (50.0, 90.0, 95.0, 99.0):  # same percentile, a smaller value is tighter
        needed = [_replicas(Targets(percentiles=((metric, q, value),))) for value in sorted(values, reverse=True)]
        assert needed == sorted(needed), (q, needed)
    # a mixed set needs at least what each of its targets needs alone
    both = Targets(ttft_ms=300.0, percentiles=((metric, 90.0, values[1]),))
    assert _replicas(both) >= max(_replicas(Targets(ttft_ms=300.0)),
                                  _replicas(Targets(percentiles=((metric, 90.0, values[1]),))))


def test_p99_ttft_target_needs_more_replicas_than_the_same_mean_target() -> None:
    assert _replicas(Targets(percentiles=(("ttft", 99.0, 500.0),))) > _replicas(Targets(ttft_ms=500.0))


def test_solver_sizes_a_class_with_percentile_targets(small_system) -> None:
    """P99 TTFT at the class's mean TTFT target: every server of the class keeps at least its replicas on the
    same accelerator, and the whole answer costs no less."""
    svc = small_system.service_classes[0]
    unlimited = replace(small_system, optimizer=replace(small_system.optimizer, unlimited=True))
    before = solve(unlimited).solution
    tight = tuple(replace(t, slo_ttft_p99_ms=t.slo_ttft_ms) for t in svc.targets)
    system = replace(unlimited, service_classes=(replace(svc, targets=tight), *unlimited.service_classes[1:]))
    after = solve(system).solution
    names = [s.name for s in small_system.servers if s.service_class == svc.name]
    assert names and all(name in after.allocations for name in names)
    grew = 0
    for name in names:
        old, new = before.allocations[name], after.allocations[name]
        assert new.cost_per_hour >= old.cost_per_hour - 1e-9
        grew += new.cost_per_hour > old.cost_per_hour
    assert grew > 0 and after.total_cost_per_hour > before.total_cost_per_hour


def test_analyze_json_has_percentiles_beside_the_means(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", *PERF, "--rpm", "120", "--ttft-p90", "500", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for where in ("point", "at_sized_rate"):
        figures = result[where]
        for metric in ("ttft", "itl"):
            row = [figures[f"{metric}_ms_p{q}"] for q in (50, 90, 99)]
            assert row == sorted(row) and figures[f"{metric}_ms"] > 0
    assert result["targets"]["ttft_ms_p90"] == 500
    assert result["at_sized_rate"]["ttft_ms_p90"] == pytest.approx(500, rel=1e-4)
    assert result["rate_meeting_ttft_p90_rpm"] == pytest.approx(result["sized_rate_rpm"])
    assert result["point"]["ttft_ms_p90"] > 500  # 120 req/min is more than one replica meeting P90 500 ms takes
    concurrency = result["optimal_concurrency"]  # sized on the percentile alone (it was left out without means)
    assert concurrency is not None and 1 <= concurrency["batch"] <= 256
    assert concurrency["throughput_rpm"] >= (1 - 0.01) * concurrency["peak_rpm"]


def test_analyze_prints_percentiles_and_rejects_a_negative_percentile_target(capsys) -> None:
    assert main(["analyze", *PERF, "--rpm", "60", "--itl-p99", "25"]) == 0
    out = capsys.readouterr().out
    assert "TTFT P50/P90/P95/P99" in out and "rate meeting ITL P99:" in out
    assert main(["analyze", *PERF, "--rpm", "60", "--ttft-p90", "-1"]) != 0
    assert "--ttft-p90" in capsys.readouterr().err


def test_unreachable_percentile_target_is_infeasible() -> None:
    sizing = size_replicas(ChainBatch.build([_model()]), [Targets(percentiles=(("ttft", 99.0, 5.0),))])
    assert not sizing.feasible[0] and np.isnan(sizing.capacity_per_ms[0])


def test_the_answer_reports_predicted_percentiles_within_the_percentile_slos(small_system) -> None:
    from services.optimizer.table import solution_table
    from services.runtime import convert

    svc = small_system.service_classes[0]
    tight = tuple(replace(t, slo_ttft_p90_ms=t.slo_ttft_ms, slo_itl_p99_ms=2 * t.slo_itl_ms) for t in svc.targets)
    system = replace(small_system, optimizer=replace(small_system.optimizer, unlimited=True),
                     service_classes=(replace(svc, targets=tight), *small_system.service_classes[1:]))
    solution = solve(system).solution
    checked = 0
    for server in system.servers:
        alloc = solution.allocations.get(server.name)
        if alloc is None or server.load.arrival_rate_rpm <= 0:
            continue
        assert 0 < alloc.ttft_ms_p50 <= alloc.ttft_ms_p90 <= alloc.ttft_ms_p95 <= alloc.ttft_ms_p99
        assert 0 < alloc.itl_ms_p50 <= alloc.itl_ms_p99
        target = system.service_class(server.service_class).target_for(server.model)
        if target is not None and target.slo_ttft_p90_ms > 0:
            assert alloc.ttft_ms_p90 <= target.slo_ttft_p90_ms * (1 + 1e-6)
            assert alloc.itl_ms_p99 <= target.slo_itl_p99_ms * (1 + 1e-6)
            checked += 1
        assert convert.allocation_from_proto(convert.allocation_to_proto(alloc)) == alloc
    assert checked > 0
    assert "TTFT P90 " in solution_table(system, solution)


@pytest.mark.parametrize("rpm", [30.0, 120.0, 600.0])
def test_the_batch_search_keeps_percentile_targets(rpm: float) -> None:
    """The searched batch needs no more replicas than the largest batch and meets the P90 TTFT and P99 ITL
    targets at its share."""
    from services.core.model import PerfParms, ServiceModel
    from services.optimizer.batchsearch import BatchProblem, fewest_replica_batches
    from services.perfmodel.servicetime import ReplicaModel

    targets = Targets(percentiles=(("itl", 99.0, 60.0), ("ttft", 90.0, 300.0)))
    top = ReplicaModel(PerfParms(16.78, 0.034, 0.00125), 128, 1024, 38, 38_000, ServiceModel.V1, out_c2=1.0)
    rate = rpm / 60_000
    [batch] = fewest_replica_batches([BatchProblem(top, targets, rate, 0, False)])
    model = replace(top, max_batch=batch, max_queue=1000 * batch)
    chains = ChainBatch.build([model])
    replicas = _need(chains, targets, rate)
    assert replicas <= _need(ChainBatch.build([top]), targets, rate)
    got = predict_percentiles(chains, np.array([rate / replicas]), [90, 99])
    assert got.ttft_ms[0, 0] <= 300.0 * (1 + 1e-6) and got.itl_ms[0, 1] <= 60.0 * (1 + 1e-6)


def _need(chains: ChainBatch, targets: Targets, rate: float) -> int:
    return math.ceil(rate / float(size_replicas(chains, [targets]).capacity_per_ms[0]))
