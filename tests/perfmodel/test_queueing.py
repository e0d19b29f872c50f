"""The birth-death chain and the service-time models against docs/model.md s2-s3 and its worked example (s7)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from services.core.model import PerfParms, ServiceModel
from services.perfmodel.queueing import ChainBatch, analyze_point, chain_metrics, geometric_tail
from services.perfmodel.servicetime import (
    ReplicaModel,
    chunks_v07,
    prefill_v07_ms,
    service_rates_per_ms,
    service_time_ms,
)
from tests.optimizer.conftest import GRANITE_G2

WORKED = ReplicaModel(GRANITE_G2, in_tokens=128, out_tokens=1024, max_batch=38, max_queue=380)


def explicit_chain(rm: ReplicaModel, rate_per_ms: float) -> dict[str, float]:
    """Reference: every state 0..C written out in plain Python, logs normalised by their maximum (s2)."""
    mu = service_rates_per_ms(rm)
    logs = [0.0]
    for i in range(1, rm.occupancy + 1):
        logs.append(logs[-1] + math.log(rate_per_ms / mu[min(i, rm.max_batch) - 1]))
    weights = [math.exp(v - max(logs)) for v in logs]
    total = sum(weights)
    p = [w / total for w in weights]
    in_system = sum(i * pi for i, pi in enumerate(p))
    in_service = sum(min(i, rm.max_batch) * pi for i, pi in enumerate(p))
    throughput = rate_per_ms * (1 - p[-1])
    return {"throughput": throughput, "in_system": in_system, "in_service": in_service, "blocking": p[-1]}


def test_worked_example_service_times_match_queueing_s7() -> None:
    times = service_time_ms(WORKED)
    assert times[0] == pytest.approx(19050.54, abs=0.01)
    assert times[-1] == pytest.approx(46288.76, abs=0.01)


def test_worked_example_metrics_at_two_thirds_request_per_second_match_queueing_s7() -> None:
    point = analyze_point(WORKED, (2 / 3) / 1000)
    assert point.service_ms == pytest.approx(37333.24, abs=0.01)
    assert point.wait_ms == pytest.approx(349.23, abs=0.01)
    assert point.utilization * 38 == pytest.approx(24.8888, abs=1e-4)
    assert point.itl_ms == pytest.approx(36.419655, rel=1e-6)
    assert point.ttft_ms == pytest.approx(425.16748, rel=1e-5)


@pytest.mark.parametrize("rate_fraction", [
    pytest.param(0.001, id="nearly-idle"),
    pytest.param(0.5, id="half-load"),
    pytest.param(0.999, id="at-lambda-max"),
    pytest.param(1.0, id="exactly-mu-N"),
    pytest.param(1.0 + 1e-9, id="just-above-mu-N"),
    pytest.param(1.3, id="overloaded"),
    pytest.param(20.0, id="far-overloaded"),
])
@pytest.mark.parametrize("queue", [pytest.param(0, id="no-queue"), pytest.param(5, id="queue-5"),
                                   pytest.param(380, id="queue-380")])
def test_closed_form_tail_agrees_with_the_explicit_chain(rate_fraction: float, queue: int) -> None:
    rm = ReplicaModel(GRANITE_G2, 128, 1024, 38, queue)
    rate = rate_fraction * float(service_rates_per_ms(rm)[-1])
    reference = explicit_chain(rm, rate)
    got = chain_metrics(ChainBatch.build([rm]), np.array([rate]))
    assert got.throughput_per_ms[0] == pytest.approx(reference["throughput"], rel=1e-9)
    assert got.in_system[0] == pytest.approx(reference["in_system"], rel=1e-9)
    assert got.in_service[0] == pytest.approx(reference["in_service"], rel=1e-9)
    assert got.blocking[0] == pytest.approx(reference["blocking"], rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("step", [-50.0, -1.0, -1e-3, -1e-7, 0.0, 1e-7, 1e-3, 1.0, 50.0])
def test_geometric_tail_matches_direct_sums(step: float) -> None:
    queue = 40
    log_sum, mean = geometric_tail(np.array([step]), np.array([float(queue)]))
    k = np.arange(1, queue + 1)
    logs = k * step
    top = logs.max()
    direct_log_sum = top + math.log(np.exp(logs - top).sum())
    direct_mean = float((k * np.exp(logs - top)).sum() / np.exp(logs - top).sum())
    assert log_sum[0] == pytest.approx(direct_log_sum, rel=1e-9, abs=1e-12)
    assert mean[0] == pytest.approx(direct_mean, rel=1e-9)


def test_zero_rate_gives_the_idle_limits() -> None:
    point = analyze_point(WORKED, 0.0)
    assert point.wait_ms == pytest.approx(0.0, abs=1e-9)
    assert point.service_ms == pytest.approx(float(service_time_ms(WORKED)[0]), rel=1e-9)


def test_empty_prompt_has_no_prefill_time() -> None:
    rm = ReplicaModel(GRANITE_G2, 0, 1024, 38, 380)
    point = analyze_point(rm, 1e-4)
    assert point.ttft_ms == pytest.approx(point.wait_ms + point.itl_ms, rel=1e-12)


def test_v07_uses_one_chunk_when_the_prompt_fits_the_token_budget() -> None:
    rm = ReplicaModel(GRANITE_G2, 128, 1024, 38, 380, ServiceModel.V07)
    assert set(chunks_v07(rm, np.arange(1, 39)).tolist()) == {1}


def test_v07_needs_more_chunks_for_a_prompt_longer_than_the_token_budget() -> None:
    rm = ReplicaModel(GRANITE_G2, 20000, 100, 4, 40, ServiceModel.V07)
    chunks = chunks_v07(rm, np.arange(0, 5))
    assert chunks.min() >= 3  # 20000 tokens need at least ceil(20000 / 8192) chunks
    assert np.all(np.diff(chunks) >= 0)


def test_v07_prefill_and_service_follow_the_chunked_formulas() -> None:
    perf = PerfParms(10.0, 0.02, 0.001)
    rm = ReplicaModel(perf, 100, 50, 4, 40, ServiceModel.V07)
    w_prefill = (0.02 + 0.001 * 2 / 2) * 100
    w_decode = 0.02 * 50 + 0.001 * 50 * (100 + 51 / 2)
    delta = (w_prefill + w_decode) / 51
    assert service_time_ms(rm)[2] == pytest.approx(51 * (10 + 3 * delta))
    assert float(prefill_v07_ms(rm, 2.0)) == pytest.approx(10 + delta + w_prefill)


def test_v07_is_selectable_and_gives_different_latency_than_v03() -> None:
    v07 = ReplicaModel(GRANITE_G2, 128, 1024, 38, 380, ServiceModel.V07)
    assert analyze_point(v07, 5e-4).itl_ms != pytest.approx(analyze_point(WORKED, 5e-4).itl_ms, rel=1e-3)


@pytest.mark.parametrize("model", [ServiceModel.V03, ServiceModel.V07, ServiceModel.V1])
@pytest.mark.parametrize("out_tokens", [1e-320, 0.5])
def test_an_average_below_one_output_token_is_one_token_without_overflow(model: ServiceModel,
                                                                        out_tokens: float) -> None:
    """A measured average in (0, 1) is its physical limit, one token (every completed request yields one at
    least): the same finite latencies as K = 1, and no overflow warning (1e-320 used to give one and ITL inf)."""
    tiny = ReplicaModel(GRANITE_G2, 128, out_tokens, 38, 380, model)
    assert tiny == ReplicaModel(GRANITE_G2, 128, 1.0, 38, 380, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        point = analyze_point(tiny, 1e-4)
    assert math.isfinite(point.itl_ms) and math.isfinite(point.ttft_ms) and point.itl_ms > 0
