"""Model "v1" (docs/model.md s3.1): every term against a case computed by hand, and its selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.core.model import Load, OptimizerSettings, PerfParms, ServiceModel
from services.perfmodel.queueing import ChainBatch, analyze_point, chain_metrics, latency_parts, wait_factor
from services.perfmodel.servicetime import (
    ReplicaModel,
    replica_model_for,
    resolve_service_model,
    service_time_ms,
    v1_chunks,
    v1_context_tokens,
    v1_terms,
)

PERF = PerfParms(alpha_ms=10.0, beta_ms=0.1, gamma_ms=0.01)
"""Round numbers so that every figure below can be checked on paper."""


def v1(in_tokens: float = 100, out_tokens: float = 11, batch: int = 2, queue: int = 20, c2: float = 0.0,
       budget: int = 8192) -> ReplicaModel:
    return ReplicaModel(PERF, in_tokens, out_tokens, batch, queue, ServiceModel.V1, out_c2=c2, token_budget=budget)


def alone_in_engine_ms(in_tokens: int, out_tokens: int) -> float:
    """One request alone, iteration by iteration as the engine runs it: a prefill iteration (L computed, L
    read) that emits the first token, then K - 1 decode iterations (1 computed, L + j read)."""
    total = PERF.alpha_ms + PERF.beta_ms * in_tokens + PERF.gamma_ms * in_tokens
    for j in range(1, out_tokens):
        total += PERF.alpha_ms + PERF.beta_ms + PERF.gamma_ms * (in_tokens + j)
    return total


def test_prefill_chunks_take_what_the_decodes_leave_of_the_token_budget() -> None:
    assert v1_chunks(100, 8192, 1) == 1
    assert v1_chunks(10_000, 8192, 1) == 2  # ceil(10000 / 8192)
    assert v1_chunks(250, 100, 1) == 3  # ceil(250 / 100)
    assert v1_chunks(250, 100, 51) == 5  # 50 others decode: 50 tokens left, ceil(250 / 50)
    assert v1_chunks(250, 100, 500) == 250  # the budget is exhausted: one token per iteration
    assert v1_chunks(0, 8192, 4) == 1  # the first token still takes an iteration


def test_kv_context_counts_long_requests_by_their_steps() -> None:
    # fixed lengths: decode steps read L + 1 .. L + K - 1, mean L + K / 2
    assert v1_context_tokens(100, 11, 0.0) == pytest.approx(105.5)
    # C2 = 1: E[K^2] = 2 K^2 = 242; (242 - 11) / (2 x 10) = 11.55
    assert v1_context_tokens(100, 11, 1.0) == pytest.approx(111.55)
    # large K approaches L + (1 + C2) K / 2: 128 + 1024 = 1152 for K = 1024, C2 = 1
    assert v1_context_tokens(128, 1024, 1.0) == pytest.approx(1152.5, abs=0.6)
    assert v1_context_tokens(100, 1, 1.0) == 100  # no decode step


def test_service_time_is_one_prefill_and_k_minus_1_decodes_without_a_double_counted_token() -> None:
    # wP = 0.1 x 100 + 0.01 x 100 = 11; wD = 0.1 + 0.01 x 105.5 = 1.155; s = 11;
    # delta = (11 + 10 x 1.155) / 11 = 2.05; S(n) = 11 (10 + 2.05 n)
    terms = v1_terms(v1(), 1)
    assert (terms.chunks, terms.steps) == (1, 11)
    assert (terms.prefill_work, terms.decode_work, terms.delta) == pytest.approx((11.0, 1.155, 2.05))
    times = service_time_ms(v1())
    assert times == pytest.approx([132.55, 155.1])
    # S(1) is exactly what one request takes alone, iteration by iteration
    assert times[0] == pytest.approx(alone_in_engine_ms(100, 11))
    # chunked: M = 60 cuts the prompt in ceil(100 / 60) = 2; wP = 10 + 0.01 x 100 x 3 / 2 = 11.5; s = 12
    chunked = v1_terms(v1(budget=60), 1)
    assert (chunked.chunks, chunked.steps, chunked.prefill_work) == pytest.approx((2, 12, 11.5))


def test_ttft_is_the_prefill_and_itl_one_decode_step_at_zero_load() -> None:
    point = analyze_point(v1(), 1e-12)
    assert point.ttft_ms == pytest.approx(21.0)  # alpha + wP: no ITL added
    assert point.itl_ms == pytest.approx(11.155)  # alpha + wD
    assert point.itl_ms == pytest.approx((alone_in_engine_ms(100, 11) - 21.0) / 10)  # K - 1 steps


def test_wait_factor_is_allen_cunneen_with_cosmetatos_correction() -> None:
    one = np.array([1.0])
    assert wait_factor(one, one, np.array([4.0]), np.array([0.6])) == pytest.approx(1.0)  # M/M/c
    assert wait_factor(one, 0 * one, one, np.array([0.6])) == pytest.approx(0.5)  # M/D/1: Pollaczek-Khinchine
    # M/D/4 at rho 0.6: g = 0.4 x 3 x (sqrt(24) - 2) / (16 x 0.6 x 4) = 0.0905931
    assert wait_factor(one, 0 * one, np.array([4.0]), np.array([0.6])) == pytest.approx(0.5 + 0.0905931 / 2)
    assert wait_factor(0 * one, 0 * one, np.array([4.0]), np.array([0.6])) == 0  # D/D/c never waits


def test_wait_adds_the_rest_of_the_iteration_in_flight() -> None:
    # N = 1 and a long queue: nearly M/M/1. C2 = 1: m = 111.55, wD = 1.2155, delta = (11 + 12.155) / 11 =
    # 2.105, S(1) = 11 x 12.105 = 133.155, Cs2 = 121 / 121 = 1, so the wait factor is 1. At rho = 0.5:
    # W = S = 133.155; rest of the iteration = (0.5 x 12.105 + (0.5 / 133.155) x 1 x 11^2) / 2 = 3.25339.
    rm = v1(batch=1, queue=2000, c2=1.0)
    assert service_time_ms(rm)[0] == pytest.approx(133.155)
    point = analyze_point(rm, 0.5 / 133.155)
    assert point.wait_ms == pytest.approx(133.155 + 3.25339, rel=1e-5)
    assert point.ttft_ms == pytest.approx(133.155 + 3.25339 + 21.0, rel=1e-5)  # B = 12.105 - 2.105 = alpha
    assert point.itl_ms == pytest.approx(11.2155)


def test_fixed_lengths_wait_less_than_variable_ones() -> None:
    fixed, variable = v1(batch=4, queue=40), v1(batch=4, queue=40, c2=1.0)
    rate = 0.8 * 4 / service_time_ms(variable)[-1]
    assert analyze_point(fixed, rate).wait_ms < 0.7 * analyze_point(variable, rate).wait_ms


def test_rows_of_mixed_models_match_each_solved_alone() -> None:
    models = [v1(), ReplicaModel(PERF, 100, 11, 2, 20), v1(in_tokens=3000, out_tokens=40, batch=9, queue=90,
                                                         c2=0.5, budget=1024)]
    chains = ChainBatch.build(models)
    rates = np.array([0.005, 0.005, 0.02])
    together = latency_parts(chains, chain_metrics(chains, rates))
    for k, rm in enumerate(models):
        alone = analyze_point(rm, float(rates[k]))
        assert (together.itl_ms[k], together.ttft_ms[k]) == pytest.approx((alone.itl_ms, alone.ttft_ms))


def test_auto_is_v1_except_in_inferno_compatible_mode() -> None:
    assert resolve_service_model(ServiceModel.AUTO, compat=True) == ServiceModel.V03
    assert resolve_service_model(ServiceModel.AUTO, compat=False) == ServiceModel.V1
    assert resolve_service_model(ServiceModel.V07, compat=False) == ServiceModel.V07
    assert resolve_service_model(ServiceModel.V1, compat=True) == ServiceModel.V1


def test_measured_c2_of_a_server_overrides_the_setting() -> None:
    settings = OptimizerSettings(service_model=ServiceModel.V1, output_c2=0.7, token_budget=2048)
    measured = replica_model_for(settings, Load(60, 100, 200, out_tokens_c2=0.2), PERF, 8, 80)
    unmeasured = replica_model_for(settings, Load(60, 100, 200), PERF, 8, 80)
    assert (measured.out_c2, unmeasured.out_c2, measured.token_budget) == (0.2, 0.7, 2048)
    assert measured.service_model == ServiceModel.V1
    assert math.isclose(unmeasured.arrival_c2, 1.0)


def test_v1_queues_without_turning_requests_away_and_compat_keeps_inferno_queue() -> None:
    from services.core.model import SolverKind
    from services.perfmodel.servicetime import default_queue
    assert default_queue(OptimizerSettings(service_model=ServiceModel.V1), 4) == 4000
    assert default_queue(OptimizerSettings(solver=SolverKind.GREEDY), 4) == 40  # auto in compat mode: v0.3
    # at 90% of capacity with N = 4, Inferno's 10 N queue turns away 0.1% and understates the wait by 7%
    rm = v1(in_tokens=128, out_tokens=64, batch=4, queue=4000, c2=1.0)
    rate = 0.9 * 4 / service_time_ms(rm)[-1]
    short = analyze_point(v1(in_tokens=128, out_tokens=64, batch=4, queue=40, c2=1.0), rate)
    long = analyze_point(rm, rate)
    assert long.blocking < 1e-12 < 1e-4 < short.blocking and long.wait_ms > 1.05 * short.wait_ms
