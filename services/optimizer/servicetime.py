"""Service-time models of one replica: "v0.3" (default) and chunked-prefill "v0.7" (docs/model.md s3).

A ReplicaModel fixes batch N, queue Q, request shape (L input, K output tokens) and perfParms; the functions
give S(n) (time to serve one request while n share the batch), mu(n) = n / S(n) and the prefill time P.
Times ms, rates requests per ms. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.core.model import PerfParms, ServiceModel

QUEUE_TO_BATCH_RATIO = 10
"""Q = 10 N, Inferno's queue size (docs/model.md s3)."""
TOKEN_BUDGET = 8192
"""M, tokens per iteration of the chunked-prefill model v0.7 (docs/model.md s3)."""


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
    """(delta, prefill extra (beta+gamma) L, decode extra beta + gamma (L + K/2)), ms (docs/model.md s3)."""
    tc = (in_tokens + out_tokens) / (out_tokens + 1)
    tm = in_tokens + out_tokens / 2
    delta = perf.beta_ms * tc + perf.gamma_ms * tm
    prefill_extra = (perf.beta_ms + perf.gamma_ms) * in_tokens
    decode_extra = perf.beta_ms + perf.gamma_ms * (in_tokens + out_tokens / 2)
    return delta, prefill_extra, decode_extra


def prefill_v03_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """v0.3 prefill time P(n) = alpha + n delta + (beta+gamma) L, 0 when L = 0 (docs/model.md s3). n may be real."""
    delta, prefill_extra, _ = _v03_terms(rm.perf, rm.in_tokens, rm.out_tokens)
    value = rm.perf.alpha_ms + np.asarray(batch, dtype=float) * delta + prefill_extra
    return value if rm.in_tokens > 0 else np.zeros_like(value)


def service_time_v03_ms(rm: ReplicaModel) -> np.ndarray:
    """v0.3 S(n) = P(n) + K D(n) for n = 1..N, shape (N,), ms (docs/model.md s3)."""
    n = np.arange(1, rm.max_batch + 1, dtype=float)
    delta, _, decode_extra = _v03_terms(rm.perf, rm.in_tokens, rm.out_tokens)
    decode = rm.perf.alpha_ms + n * delta + decode_extra
    return prefill_v03_ms(rm, n) + rm.out_tokens * decode


def chunks_v07(rm: ReplicaModel, batch: np.ndarray) -> np.ndarray:
    """c(B): least c >= 1 with floor((c+K)(M - L/c)/(L+K)) >= B, for each B in ``batch`` (docs/model.md s3)."""
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
    """(wP(c), delta_c) for chunk counts c, ms per request (docs/model.md s3)."""
    p, L, K = rm.perf, rm.in_tokens, rm.out_tokens
    w_prefill = (p.beta_ms + p.gamma_ms * (chunks + 1) / 2) * L
    w_decode = p.beta_ms * K + p.gamma_ms * K * (L + (K + 1) / 2)
    return w_prefill, (w_prefill + w_decode) / (chunks + K)


def service_time_v07_ms(rm: ReplicaModel) -> np.ndarray:
    """v0.7 tau(B) = (c+K)(alpha + B delta_c) with c = c(B), B = 1..N, shape (N,), ms (docs/model.md s3)."""
    b = np.arange(1, rm.max_batch + 1)
    c = chunks_v07(rm, b).astype(float)
    _, delta_c = _v07_terms(rm, c)
    return (c + rm.out_tokens) * (rm.perf.alpha_ms + b * delta_c)


def prefill_v07_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """v0.7 P(X) = c max(alpha + (X-1) delta_c, 0) + wP(c) with c = c(round(X)) (docs/model.md s3)."""
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


def service_time_grid_v03_ms(models: Sequence[ReplicaModel], width: int) -> np.ndarray:
    """v0.3 S(n) for n = 1..width of every model at once, shape (len(models), width), ms (docs/model.md s3).

    Columns beyond a model's N are computed too; callers mask them.
    """
    params = np.array([(rm.perf.alpha_ms, rm.out_tokens, rm.in_tokens > 0, *_v03_terms(rm.perf, rm.in_tokens,
                                                                                         rm.out_tokens))
                       for rm in models], dtype=float).reshape(len(models), 6)
    alpha, out_tokens, has_prompt, delta, prefill_extra, decode_extra = (params[:, k:k + 1] for k in range(6))
    iteration = alpha + np.arange(1, width + 1, dtype=float) * delta
    return has_prompt * (iteration + prefill_extra) + out_tokens * (iteration + decode_extra)


def prefill_grid_v03_ms(models: Sequence[ReplicaModel], batch: float) -> np.ndarray:
    """v0.3 P(n) at one (real) n for every model at once, shape (len(models),), ms: prefill_v03_ms of each."""
    params = np.array([(rm.perf.alpha_ms, rm.in_tokens, *_v03_terms(rm.perf, rm.in_tokens, rm.out_tokens)[:2])
                       for rm in models], dtype=float).reshape(len(models), 4)
    alpha, in_tokens, delta, prefill_extra = params.T
    return np.where(in_tokens > 0, alpha + batch * delta + prefill_extra, 0.0)
