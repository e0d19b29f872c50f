"""One replica under seeded Poisson load in event time: hand-computed light-load times, queueing theory
(M/D/1) at half load, seeding, and the measurement window."""

from __future__ import annotations

import pytest

from emulator.enginecore import EngineParams
from emulator.eventload import poisson_arrivals, poisson_load, run_arrivals, summarize
from emulator.loadshape import Length, parse_length

_FIXED_IN, _FIXED_OUT = Length("fixed", 100, 0, 100), Length("fixed", 10, 1, 10)


def test_alone_a_request_sees_its_prefill_and_decode_iterations():
    result = poisson_load(EngineParams(10, 0.1, 0), 0.01, _FIXED_IN, _FIXED_OUT, requests=50, seed=1)
    assert result.ttft_ms["mean"] == pytest.approx(10 + 0.1 * 100)
    assert result.ttft_ms["p99"] == pytest.approx(20)
    assert result.itl_ms == pytest.approx(10.1) and result.itl_ms_per_request["p50"] == pytest.approx(10.1)
    assert result.e2e_ms["mean"] == pytest.approx(20 + 9 * 10.1)
    assert (result.in_tokens, result.out_tokens, result.out_tokens_c2, result.preemptions) == (100, 10, 0, 0)


def test_one_at_a_time_the_wait_is_m_d_1():
    # max_num_seqs 1 and fixed lengths: deterministic service S = prefill + 9 decodes = 110.9 ms; at load 0.5
    # the mean wait is rho S / (2 (1 - rho)) = 55.45 ms (Pollaczek-Khinchine), TTFT = wait + prefill
    service_s = 0.1109
    result = poisson_load(EngineParams(10, 0.1, 0, max_num_seqs=1), 0.5 / service_s, _FIXED_IN, _FIXED_OUT,
                          requests=5000, seed=0)
    assert result.ttft_ms["mean"] == pytest.approx(55.45 + 20, rel=0.05)
    assert result.utilization == pytest.approx(0.5, rel=0.05) and result.mean_batch == pytest.approx(0.5, rel=0.05)
    assert result.offered_rps == pytest.approx(0.5 / service_s, rel=0.05)


def test_the_same_seed_gives_the_same_arrival_times_whatever_the_lengths():
    exponential = parse_length({"dist": "exponential", "mean": 10})
    fixed = poisson_arrivals(3.0, 200, _FIXED_IN, _FIXED_OUT, seed=4)
    varied = poisson_arrivals(3.0, 200, _FIXED_IN, exponential, seed=4)
    assert [a for a, _, _ in fixed] == [a for a, _, _ in varied]
    assert {o for _, _, o in varied} != {10} and varied == poisson_arrivals(3.0, 200, _FIXED_IN, exponential, seed=4)
    result = poisson_load(EngineParams(10, 0.1, 0.01), 3.0, _FIXED_IN, exponential, requests=300, seed=4)
    assert result == poisson_load(EngineParams(10, 0.1, 0.01), 3.0, _FIXED_IN, exponential, requests=300, seed=4)
    assert 0.7 < result.out_tokens_c2 < 1.3


def test_the_window_leaves_out_warm_up_and_cool_down_and_bad_input_is_refused():
    requests, spans = run_arrivals(EngineParams(10, 0, 0), [(0.1 * i, 5, 3) for i in range(100)])
    assert summarize(requests, spans, warmup=0.2, cooldown=0.3).requests == 50
    with pytest.raises(ValueError, match="warmup"):
        summarize(requests, spans, warmup=0.6, cooldown=0.5)
    with pytest.raises(ValueError, match="out of order"):
        run_arrivals(EngineParams(10, 0, 0), [(1.0, 5, 3), (0.5, 5, 3)])
    with pytest.raises(ValueError, match="rate_rps > 0"):
        poisson_arrivals(0, 10, _FIXED_IN, _FIXED_OUT)
