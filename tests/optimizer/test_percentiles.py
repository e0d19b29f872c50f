"""Predicted TTFT and ITL percentiles (docs/model.md s3.2): hand-computable M/M/1 and the engine's samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.percentile_bench import GRANITE, engine_percentiles
from emulator.loadshape import Length
from services.core.model import PerfParms, ServiceModel
from services.optimizer.percentiles import predict_percentiles
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_parts
from services.perfmodel.servicetime import ReplicaModel

# One slot, no prompt, exponential output lengths: an M/M/1 queue with mean service 10 x 10 ms = 100 ms.
MM1 = ReplicaModel(PerfParms(10.0, 0.0, 0.0), 0, 10, 1, 1000, ServiceModel.V1, out_c2=1.0)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_one_server_exponential_service_gives_mm1_waiting_time_quantiles(rho: float) -> None:
    chains = ChainBatch.build([MM1])
    mu = float(chains.mu_full_per_ms[0])
    assert 1 / mu == pytest.approx(100.0)
    got = predict_percentiles(chains, np.array([rho * mu]), [50, 90, 95, 99])
    # M/M/1: P(Wq > t) = rho exp(-mu (1 - rho) t), so t_q = ln(rho / (1 - q)) / (mu (1 - rho)) when rho > 1 - q
    expected = [max(math.log(rho / (1 - q)), 0.0) / (mu * (1 - rho)) for q in (0.5, 0.9, 0.95, 0.99)]
    assert got.queue_wait_ms[0] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    parts = latency_parts(chains, chain_metrics(chains, np.array([rho * mu])))
    # the rest of the TTFT (the iteration in flight, the prefill) is taken at its mean: the same at every q
    rest = got.ttft_ms[0] - got.queue_wait_ms[0]
    assert np.ptp(rest) == pytest.approx(0.0, abs=1e-9)
    assert rest[0] == pytest.approx(parts.ttft_ms[0] - rho / (mu * (1 - rho)))  # mean TTFT - M/M/1's mean wait
    assert got.itl_ms[0] == pytest.approx([10.0] * 4)  # one slot: every gap is one 10 ms iteration


def test_percentiles_grow_with_the_percentile_and_the_load() -> None:
    rm = ReplicaModel(GRANITE, 128, 64, 4, 4000, ServiceModel.V1, out_c2=1.0)
    chains = ChainBatch.build([rm] * 3)
    rates = np.array([0.3, 0.6, 0.9]) * chains.mu_full_per_ms
    got = predict_percentiles(chains, rates, [50, 90, 95, 99])
    assert np.all(np.diff(got.ttft_ms, axis=1) >= 0) and np.all(np.diff(got.ttft_ms, axis=0) > 0)
    assert np.all(np.diff(got.itl_ms, axis=1) >= 0)
    # the ITL's P99 is a gap with a prefill chunk in it (beta L = 4.4 ms longer), in more than 1% of the gaps
    assert np.all(got.itl_ms[:, 3] > got.itl_ms[:, 1] + 3.0)
    assert got.ttft_ms[2, 3] > 5 * got.ttft_ms[2, 0]  # near saturation the tail is long


def test_mixed_rows_match_rows_solved_alone() -> None:
    a = ReplicaModel(GRANITE, 128, 64, 4, 4000, ServiceModel.V1, out_c2=1.0)
    b = ReplicaModel(GRANITE, 512, 256, 16, 16000, ServiceModel.V1, out_c2=0.0)
    both = ChainBatch.build([a, b])
    rates = 0.7 * both.mu_full_per_ms
    together = predict_percentiles(both, rates, [90, 99])
    for k, rm in enumerate((a, b)):
        alone = predict_percentiles(ChainBatch.build([rm]), rates[k:k + 1], [90, 99])
        assert together.ttft_ms[k] == pytest.approx(alone.ttft_ms[0])
        assert together.itl_ms[k] == pytest.approx(alone.itl_ms[0])


@pytest.mark.parametrize("q", [0, 100, -1, 101])
def test_percentile_outside_0_100_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="percentiles"):
        predict_percentiles(ChainBatch.build([MM1]), np.array([0.001]), [q])


def test_predictions_match_the_engine_samples_at_60_percent_load() -> None:
    """Fixed output lengths, 60% load, 20,000 requests: TTFT P90/P99 within 25%, ITL P50/P90/P99 within 5%
    (the bench `python -m bench percentiles` runs 30/60/90% with fixed and exponential lengths)."""
    rm = ReplicaModel(GRANITE, 128, 64, 4, 4000, ServiceModel.V1, out_c2=0.0)
    chains = ChainBatch.build([rm])
    rate = 0.6 * float(chains.mu_full_per_ms[0])
    predicted = predict_percentiles(chains, np.array([rate]), [50, 90, 99])
    ttft, itl = engine_percentiles(rate * 1000, 20_000, Length("fixed", 64))
    assert predicted.ttft_ms[0, 1:] == pytest.approx(ttft[1:], rel=0.25)
    assert predicted.itl_ms[0] == pytest.approx(itl, rel=0.05)
