"""Batch-size rule (docs/model.md s4) and the SLO sizing bisection (s5)."""

from __future__ import annotations

import numpy as np
import pytest

from services.core.model import ModelPerf
from services.optimizer.sizing import Targets, batch_size, size_replicas
from services.perfmodel.queueing import ChainBatch, analyze_point
from services.perfmodel.servicetime import ReplicaModel, service_rates_per_ms
from tests.optimizer.conftest import GRANITE_G2

PERF = ModelPerf("granite_13b", "G2", 1, 76, 512, GRANITE_G2)
WORKED = ReplicaModel(GRANITE_G2, 128, 1024, 38, 380)


@pytest.mark.parametrize(("server_batch", "out_tokens", "expected"), [
    pytest.param(0, 1024, 38, id="worked-example-76x512/1024"),
    pytest.param(0, 1000, 38, id="integer-division-rounds-down"),
    pytest.param(0, 100000, 1, id="never-below-one"),
    pytest.param(12, 1024, 12, id="server-max-batch-overrides"),
])
def test_batch_size_rule(server_batch: int, out_tokens: float, expected: int) -> None:
    assert batch_size(server_batch, PERF, out_tokens) == expected


def size_one(rm: ReplicaModel, targets: Targets) -> tuple[float, float]:
    sizing = size_replicas(ChainBatch.build([rm]), [targets])
    return float(sizing.rate_per_ms[0]), float(sizing.capacity_per_ms[0])


def test_worked_example_ttft_bisection_gives_the_published_rate_and_three_replicas() -> None:
    rate, capacity = size_one(WORKED, Targets(itl_ms=80, ttft_ms=2000))
    assert rate * 1000 == pytest.approx(0.721509, abs=1e-6)
    assert int(np.ceil(2.0 / (capacity * 1000))) == 3


def test_sized_rate_meets_ttft_within_the_bisection_tolerance() -> None:
    rate, _ = size_one(WORKED, Targets(ttft_ms=2000))
    assert analyze_point(WORKED, rate).ttft_ms == pytest.approx(2000, rel=1e-6)


def test_target_below_the_lightest_load_latency_is_infeasible() -> None:
    rate, capacity = size_one(WORKED, Targets(itl_ms=5.0))
    assert np.isnan(rate) and np.isnan(capacity)


def test_target_above_the_heaviest_load_latency_gives_lambda_max() -> None:
    rate, _ = size_one(WORKED, Targets(itl_ms=10_000.0))
    assert rate == pytest.approx(0.999 * float(service_rates_per_ms(WORKED)[-1]), rel=1e-12)


def test_no_target_gives_lambda_max_and_tps_target_gives_ninety_percent_of_it() -> None:
    free, _ = size_one(WORKED, Targets())
    tps, _ = size_one(WORKED, Targets(tps=2000))
    assert tps == pytest.approx(0.9 * free, rel=1e-12)


def test_the_tightest_target_decides() -> None:
    ttft_only, _ = size_one(WORKED, Targets(ttft_ms=2000))
    both, _ = size_one(WORKED, Targets(itl_ms=30, ttft_ms=2000))
    itl_only, _ = size_one(WORKED, Targets(itl_ms=30))
    assert both == pytest.approx(min(ttft_only, itl_only), rel=1e-12)
    assert itl_only < ttft_only


def test_blocking_bound_lowers_the_rate_of_a_small_queue_until_loss_is_within_it() -> None:
    rm = ReplicaModel(GRANITE_G2, 128, 1024, 38, 0)
    loose, _ = size_one(rm, Targets(ttft_ms=1e6))
    bounded, _ = size_one(rm, Targets(ttft_ms=1e6, blocking=1e-3))
    assert bounded < loose
    assert analyze_point(rm, bounded).blocking == pytest.approx(1e-3, rel=1e-5)


def test_rows_are_sized_independently_in_one_batch() -> None:
    other = ReplicaModel(GRANITE_G2, 256, 512, 76, 760)
    sizing = size_replicas(ChainBatch.build([WORKED, other]), [Targets(ttft_ms=2000), Targets(itl_ms=40)])
    assert sizing.rate_per_ms[0] == pytest.approx(size_one(WORKED, Targets(ttft_ms=2000))[0], rel=1e-12)
    assert sizing.rate_per_ms[1] == pytest.approx(size_one(other, Targets(itl_ms=40))[0], rel=1e-12)
