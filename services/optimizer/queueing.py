"""One inference replica as a finite birth-death chain with state-dependent service (QUEUEING.md s2-s3).

Everything here is vectorised over *rows*: a ChainBatch holds many replica models at once (padded to the
widest chain), and chain_metrics / latency_ms evaluate all of them at one arrival rate per row. Rates are
requests per **ms**, times are **ms**, token counts are per request. Pure: numpy only, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.common.model import PerfParms, ServiceModel

QUEUE_TO_BATCH_RATIO = 10
"""Q = 10 N, Inferno's queue size (QUEUEING.md s3)."""
TOKEN_BUDGET = 8192
"""M, tokens per iteration of the chunked-prefill model v0.7 (QUEUEING.md s3)."""
_TINY_RATE_PER_MS = 1e-200
"""Floor on the arrival rate so that log(rate) stays finite; metrics then take their zero-load limits."""


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """One replica's queueing model: batch N, queue Q, request shape (L in, K out tokens), perf, variant."""

    perf: PerfParms
    in_tokens: float
    out_tokens: float
    max_batch: int
    max_queue: int
    service_model: ServiceModel = ServiceModel.V03

    @property
    def occupancy(self) -> int:
        """C = N + Q, the most requests one replica holds."""
        return self.max_batch + self.max_queue


def _v03_terms(perf: PerfParms, in_tokens: float, out_tokens: float) -> tuple[float, float, float]:
    """(delta, prefill extra (beta+gamma) L, decode extra beta + gamma (L + K/2)), ms (QUEUEING.md s3)."""
    tc = (in_tokens + out_tokens) / (out_tokens + 1)
    tm = in_tokens + out_tokens / 2
    delta = perf.beta_ms * tc + perf.gamma_ms * tm
    prefill_extra = (perf.beta_ms + perf.gamma_ms) * in_tokens
    decode_extra = perf.beta_ms + perf.gamma_ms * (in_tokens + out_tokens / 2)
    return delta, prefill_extra, decode_extra


def prefill_v03_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """v0.3 prefill time P(n) = alpha + n delta + (beta+gamma) L, 0 when L = 0 (QUEUEING.md s3). n may be real."""
    delta, prefill_extra, _ = _v03_terms(rm.perf, rm.in_tokens, rm.out_tokens)
    value = rm.perf.alpha_ms + np.asarray(batch, dtype=float) * delta + prefill_extra
    return value if rm.in_tokens > 0 else np.zeros_like(value)


def service_time_v03_ms(rm: ReplicaModel) -> np.ndarray:
    """v0.3 S(n) = P(n) + K D(n) for n = 1..N, shape (N,), ms (QUEUEING.md s3)."""
    n = np.arange(1, rm.max_batch + 1, dtype=float)
    delta, _, decode_extra = _v03_terms(rm.perf, rm.in_tokens, rm.out_tokens)
    decode = rm.perf.alpha_ms + n * delta + decode_extra
    return prefill_v03_ms(rm, n) + rm.out_tokens * decode


def chunks_v07(rm: ReplicaModel, batch: np.ndarray) -> np.ndarray:
    """c(B): least c >= 1 with floor((c+K)(M - L/c)/(L+K)) >= B, for each B in ``batch`` (QUEUEING.md s3)."""
    L, K = rm.in_tokens, rm.out_tokens
    need = int(np.max(batch, initial=0))
    limit = 1
    while True:
        c = np.arange(1, limit + 1, dtype=float)
        fits = np.floor((c + K) * (TOKEN_BUDGET - L / c) / (L + K))
        if fits[-1] >= need:
            return np.searchsorted(fits, np.asarray(batch, dtype=float), side="left") + 1
        limit *= 2


def _v07_terms(rm: ReplicaModel, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wP(c), delta_c) for chunk counts c, ms per request (QUEUEING.md s3)."""
    p, L, K = rm.perf, rm.in_tokens, rm.out_tokens
    w_prefill = (p.beta_ms + p.gamma_ms * (chunks + 1) / 2) * L
    w_decode = p.beta_ms * K + p.gamma_ms * K * (L + (K + 1) / 2)
    return w_prefill, (w_prefill + w_decode) / (chunks + K)


def service_time_v07_ms(rm: ReplicaModel) -> np.ndarray:
    """v0.7 tau(B) = (c+K)(alpha + B delta_c) with c = c(B), B = 1..N, shape (N,), ms (QUEUEING.md s3)."""
    b = np.arange(1, rm.max_batch + 1)
    c = chunks_v07(rm, b).astype(float)
    _, delta_c = _v07_terms(rm, c)
    return (c + rm.out_tokens) * (rm.perf.alpha_ms + b * delta_c)


def prefill_v07_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """v0.7 P(X) = c max(alpha + (X-1) delta_c, 0) + wP(c) with c = c(round(X)) (QUEUEING.md s3)."""
    x = np.asarray(batch, dtype=float)
    c = chunks_v07(rm, np.clip(np.rint(x), 0, None).astype(int)).astype(float)
    w_prefill, delta_c = _v07_terms(rm, c)
    return c * np.maximum(rm.perf.alpha_ms + (x - 1) * delta_c, 0.0) + w_prefill


def service_time_ms(rm: ReplicaModel) -> np.ndarray:
    """S(n) for n = 1..N under the replica's service model, shape (N,), ms."""
    return service_time_v07_ms(rm) if rm.service_model == ServiceModel.V07 else service_time_v03_ms(rm)


def prefill_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """Prefill time at (mean) batch ``batch`` under the replica's service model, ms."""
    return prefill_v07_ms(rm, batch) if rm.service_model == ServiceModel.V07 else prefill_v03_ms(rm, batch)


def service_rates_per_ms(rm: ReplicaModel) -> np.ndarray:
    """mu(n) = n / S(n) for n = 1..N, shape (N,), requests per ms."""
    return np.arange(1, rm.max_batch + 1) / service_time_ms(rm)


@dataclass(frozen=True, slots=True)
class ChainBatch:
    """Many replica chains padded to one width W = max C + 1.

    ``log_weights[r, i]`` = -sum_{j<=i} log mu_r(min(j, N_r)) (-inf beyond C_r), so that
    log p_r(i) = i log(lambda_r) + log_weights[r, i] up to normalisation (QUEUEING.md s2).
    """

    models: tuple[ReplicaModel, ...]
    log_weights: np.ndarray
    batch: np.ndarray
    occupancy: np.ndarray
    mu_one_per_ms: np.ndarray
    mu_full_per_ms: np.ndarray
    out_tokens: np.ndarray
    prefill_base_ms: np.ndarray
    prefill_slope_ms: np.ndarray
    chunked: np.ndarray

    @classmethod
    def build(cls, models: Sequence[ReplicaModel]) -> ChainBatch:
        """Precompute the chains of ``models`` (each needs N >= 1, K > 0)."""
        width = max(rm.occupancy for rm in models) + 1
        log_weights = np.full((len(models), width), -np.inf)
        mu_one, mu_full = np.empty(len(models)), np.empty(len(models))
        for r, rm in enumerate(models):
            mu = service_rates_per_ms(rm)
            per_state = np.concatenate([mu, np.full(rm.max_queue, mu[-1])])
            log_weights[r, 0] = 0.0
            log_weights[r, 1:rm.occupancy + 1] = -np.cumsum(np.log(per_state))
            mu_one[r], mu_full[r] = mu[0], mu[-1]
        base = np.array([float(prefill_v03_ms(rm, 0.0)) for rm in models])
        slope = np.array([float(prefill_v03_ms(rm, 1.0)) for rm in models]) - base
        return cls(tuple(models), log_weights,
                   np.array([rm.max_batch for rm in models], dtype=float),
                   np.array([rm.occupancy for rm in models]), mu_one, mu_full,
                   np.array([rm.out_tokens for rm in models], dtype=float), base, slope,
                   np.array([rm.service_model == ServiceModel.V07 for rm in models]))

    def __len__(self) -> int:
        return len(self.models)


@dataclass(frozen=True, slots=True)
class ChainMetrics:
    """Steady-state figures per row (QUEUEING.md s2); all arrays of shape (rows,)."""

    throughput_per_ms: np.ndarray
    in_system: np.ndarray
    in_service: np.ndarray
    response_ms: np.ndarray
    service_ms: np.ndarray
    wait_ms: np.ndarray
    utilization: np.ndarray
    blocking: np.ndarray


def chain_metrics(chains: ChainBatch, rate_per_ms: np.ndarray, rows: np.ndarray | None = None) -> ChainMetrics:
    """Solve the chains of ``rows`` (all when None) at one arrival rate each (requests/ms, shape (rows,)).

    Probabilities come from cumulative sums of logs, normalised by their maximum, so no overflow occurs
    even far above saturation. Raises nothing; a rate <= 0 yields the zero-load limits.
    """
    idx = np.arange(len(chains)) if rows is None else rows
    rate = np.maximum(np.asarray(rate_per_ms, dtype=float), _TINY_RATE_PER_MS)
    weights = chains.log_weights[idx]
    states = np.arange(weights.shape[1], dtype=float)
    log_p = states * np.log(rate)[:, None] + weights
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    batch = chains.batch[idx]
    in_system = p @ states
    in_service = (p * np.minimum(states, batch[:, None])).sum(axis=1)
    blocking = p[np.arange(len(idx)), chains.occupancy[idx]]
    throughput = rate * (1.0 - blocking)
    response = in_system / throughput
    service = in_service / throughput
    return ChainMetrics(throughput, in_system, in_service, response, service,
                        np.maximum(response - service, 0.0), in_service / batch, blocking)


def latency_ms(chains: ChainBatch, metrics: ChainMetrics, rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(ITL, TTFT) per row, ms: ITL = (Sbar - P(X)) / K, TTFT = W + P(X) + ITL (QUEUEING.md s3)."""
    idx = np.arange(len(chains)) if rows is None else rows
    prefill = chains.prefill_base_ms[idx] + chains.prefill_slope_ms[idx] * metrics.in_service
    for k in np.flatnonzero(chains.chunked[idx]):
        prefill[k] = float(prefill_v07_ms(chains.models[idx[k]], metrics.in_service[k]))
    itl = (metrics.service_ms - prefill) / chains.out_tokens[idx]
    return itl, metrics.wait_ms + prefill + itl


@dataclass(frozen=True, slots=True)
class PointAnalysis:
    """One replica at one arrival rate: the figures `analyze` reports. Rates per ms, times ms."""

    rate_per_ms: float
    throughput_per_ms: float
    wait_ms: float
    service_ms: float
    itl_ms: float
    ttft_ms: float
    utilization: float
    blocking: float
    max_rate_per_ms: float


def analyze_point(rm: ReplicaModel, rate_per_ms: float) -> PointAnalysis:
    """Evaluate one replica model at ``rate_per_ms`` (requests/ms); max_rate is 0.999 mu(N) (QUEUEING.md s5)."""
    chains = ChainBatch.build([rm])
    metrics = chain_metrics(chains, np.array([rate_per_ms]))
    itl, ttft = latency_ms(chains, metrics)
    return PointAnalysis(rate_per_ms, float(metrics.throughput_per_ms[0]), float(metrics.wait_ms[0]),
                         float(metrics.service_ms[0]), float(itl[0]), float(ttft[0]),
                         float(metrics.utilization[0]), float(metrics.blocking[0]),
                         0.999 * float(chains.mu_full_per_ms[0]))

