"""Service-time models of one replica: Inferno's "v0.3" and "v0.7" (docs/model.md s3) and "v1", continuous
batching as vLLM runs it (docs/model.md s3.1).

A ReplicaModel fixes batch N, queue Q, request shape (L input, K output tokens, the output length's C2) and
perfParms; the functions give S(n) (time to serve one request while n share the batch), mu(n) = n / S(n) and
the prefill time P. Times ms, rates requests per ms. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.core.bounds import MIN_AVG_OUT_TOKENS
from services.core.model import Load, OptimizerSettings, PerfParms, ServiceModel, SolverKind

QUEUE_TO_BATCH_RATIO = 10
"""Q = 10 N, Inferno's queue size (docs/model.md s3)."""
V1_QUEUE_TO_BATCH_RATIO = 1000
"""Q = 1000 N under model v1: vLLM queues without a bound, so the chain must not turn requests away
(docs/model.md s3.1); the queue states cost nothing (a closed-form geometric tail)."""
TOKEN_BUDGET = 8192
"""M, tokens per iteration of the chunked-prefill model v0.7 (docs/model.md s3)."""


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """One replica's queueing model: batch N, queue Q, request shape (L in, K out tokens), perf, variant.

    Model v1 only (docs/model.md s3.1): ``out_c2`` the squared coefficient of variation of the output length
    (0 fixed, 1 exponential), ``arrival_c2`` that of the inter-arrival times (1 Poisson, 0 evenly spaced),
    ``token_budget`` M, the tokens one iteration may compute (vLLM's max-num-batched-tokens).
    """

    perf: PerfParms
    in_tokens: float
    out_tokens: float
    max_batch: int
    max_queue: int
    service_model: ServiceModel = ServiceModel.V03
    out_c2: float = 0.0
    arrival_c2: float = 1.0
    token_budget: int = TOKEN_BUDGET

    def __post_init__(self) -> None:
        # Every completed request yields one output token at least: a measured average in (0, 1) (1e-320 from
        # a float division) is that limit, 1, under every model (v1 and the fit took it already). Below it the
        # v0.3 / v0.7 ITL, (Sbar - P) / K, divided the chain's rounding error by K: overflow, no latency.
        if 0 < self.out_tokens < MIN_AVG_OUT_TOKENS:
            object.__setattr__(self, "out_tokens", MIN_AVG_OUT_TOKENS)

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


def resolve_service_model(requested: ServiceModel, compat: bool) -> ServiceModel:
    """The model that sizes replicas: ``requested`` unless it is ``auto``, which means v1, or v0.3 in
    Inferno-compatible mode (``compat``: the greedy solver), so Inferno's published solutions come out
    (docs/model.md s3)."""
    if requested != ServiceModel.AUTO:
        return requested
    return ServiceModel.V03 if compat else ServiceModel.V1


def settings_service_model(settings: OptimizerSettings) -> ServiceModel:
    """resolve_service_model for ``settings``; Inferno-compatible mode is the greedy solver (solver.solve sets
    ``settings.solver`` to the one it runs; unset counts as the default, exact)."""
    return resolve_service_model(settings.service_model, compat=settings.solver == SolverKind.GREEDY)


def default_queue(settings: OptimizerSettings, batch: int) -> int:
    """Q for a server that sets no maxQueueSize: 10 N (Inferno's) under v0.3 / v0.7, 1000 N under v1."""
    ratio = V1_QUEUE_TO_BATCH_RATIO if settings_service_model(settings) == ServiceModel.V1 else QUEUE_TO_BATCH_RATIO
    return ratio * batch


def replica_model_for(settings: OptimizerSettings, load: Load, perf: PerfParms, batch: int, queue: int
                      ) -> ReplicaModel:
    """The ReplicaModel of one (server, accelerator) under ``settings``: the model in use
    (settings_service_model), the load's shape, its measured output-length C2 or the ``output_c2`` setting,
    Poisson arrivals and the ``token_budget`` setting."""
    c2 = load.out_tokens_c2 if load.out_tokens_c2 is not None else settings.output_c2
    return ReplicaModel(perf, load.avg_in_tokens, load.avg_out_tokens, batch, queue,
                        settings_service_model(settings), out_c2=c2, token_budget=settings.token_budget)


@dataclass(frozen=True, slots=True)
class V1Terms:
    """Per-request work of model v1 (docs/model.md s3.1), arrays broadcast over batch sizes n; ms or tokens.

    ``chunks`` c: prefill iterations; ``steps`` s = c + K - 1 iterations a request spends in the batch;
    ``prefill_work`` wP = beta L + gamma L (c + 1) / 2; ``decode_work`` wD = beta + gamma m, one decode step at
    the mean context m; ``delta`` = (wP + (K - 1) wD) / s, a request's mean work per iteration.
    """

    chunks: np.ndarray
    steps: np.ndarray
    prefill_work: np.ndarray
    decode_work: np.ndarray
    delta: np.ndarray


def v1_chunks(in_tokens: np.ndarray | float, token_budget: np.ndarray | float, batch: np.ndarray | float
              ) -> np.ndarray:
    """c(n) = max(ceil(L / (M - (n - 1))), 1): prefill iterations of an L-token prompt when the other n - 1
    requests decode one token each within the budget M (vLLM schedules running requests first); the budget
    left is at least 1 token (docs/model.md s3.1)."""
    left = np.maximum(np.asarray(token_budget, dtype=float) - (np.asarray(batch, dtype=float) - 1), 1.0)
    return np.maximum(np.ceil(np.asarray(in_tokens, dtype=float) / left), 1.0)


def v1_context_tokens(in_tokens: np.ndarray | float, out_tokens: np.ndarray | float,
                      out_c2: np.ndarray | float) -> np.ndarray:
    """m = L + (K^2 (1 + C2) - K) / (2 (K - 1)): mean KV tokens one decode step of a request reads (docs/model.md
    s3.1). Decode step j = 1..K_i - 1 reads L + j tokens; averaged over all decode steps of all requests (long
    requests have more), E[sum] / E[K_i - 1] with E[K_i^2] = K^2 (1 + C2). For fixed lengths L + K / 2; for
    large K about L + (1 + C2) K / 2. K <= 1 (no decode step) gives L."""
    L, K, c2 = (np.asarray(v, dtype=float) for v in (in_tokens, out_tokens, out_c2))
    steps = np.maximum(K - 1.0, 1e-12)
    return np.where(K > 1.0, L + (K * K * (1.0 + c2) - K) / (2.0 * steps), L)


def v1_terms(rm: ReplicaModel, batch: np.ndarray | float) -> V1Terms:
    """The per-request work of model v1 at batch size(s) ``batch``, arrays shaped like ``batch``
    (docs/model.md s3.1)."""
    b = np.asarray(batch, dtype=float)
    grid = v1_grid_terms(v1_params([rm]), b.reshape(1, -1))
    return V1Terms(*(np.broadcast_to(a, (1, b.size)).reshape(b.shape)
                     for a in (grid.chunks, grid.steps, grid.prefill_work, grid.decode_work, grid.delta)))


def service_time_v1_ms(rm: ReplicaModel) -> np.ndarray:
    """v1 S(n) = s(n) (alpha + n delta(n)) for n = 1..N, shape (N,), ms (docs/model.md s3.1): a request spends
    s = c + K - 1 iterations in the batch (c prefill iterations, the last emitting the first token, then K - 1
    decode iterations), each taking alpha plus the mean work delta of each of the n requests in it."""
    n = np.arange(1, rm.max_batch + 1, dtype=float)
    terms = v1_terms(rm, n)
    return terms.steps * (rm.perf.alpha_ms + n * terms.delta)


def service_time_ms(rm: ReplicaModel) -> np.ndarray:
    """S(n) for n = 1..N under the replica's service model, shape (N,), ms."""
    if rm.service_model == ServiceModel.V1:
        return service_time_v1_ms(rm)
    return service_time_v07_ms(rm) if rm.service_model == ServiceModel.V07 else service_time_v03_ms(rm)


def prefill_ms(rm: ReplicaModel, batch: np.ndarray | float) -> np.ndarray:
    """Prefill time at (mean) batch ``batch`` under the replica's service model (v0.3, v0.7), ms."""
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


V1_PARAMS = ("alpha", "beta", "gamma", "in_tokens", "out_tokens", "out_c2", "arrival_c2", "token_budget",
             "ttft_overhead")
"""Columns of v1_params: what model v1 needs per replica model."""


def v1_params(models: Sequence[ReplicaModel]) -> np.ndarray:
    """Model v1's inputs of every model, shape (len(models), 9), columns V1_PARAMS (K floored at 1)."""
    return np.array([(rm.perf.alpha_ms, rm.perf.beta_ms, rm.perf.gamma_ms, rm.in_tokens, max(rm.out_tokens, 1.0),
                      rm.out_c2, rm.arrival_c2, rm.token_budget, rm.perf.ttft_overhead_ms) for rm in models],
                    dtype=float).reshape(-1, len(V1_PARAMS))


def v1_grid_terms(params: np.ndarray, batch: np.ndarray) -> V1Terms:
    """v1_terms of many models at once: ``params`` (rows, 9) from v1_params, ``batch`` broadcast against
    (rows, 1) (a row of batch sizes, or one per row); docs/model.md s3.1."""
    alpha, beta, gamma, L, K, c2, _, budget, _ = (params[:, k:k + 1] for k in range(len(V1_PARAMS)))
    c = v1_chunks(L, budget, batch)
    w_prefill = beta * L + gamma * L * (c + 1.0) / 2.0
    w_decode = beta + gamma * v1_context_tokens(L, K, c2)
    steps = c + K - 1.0
    return V1Terms(c, steps, w_prefill, np.broadcast_to(w_decode, c.shape), (w_prefill + (K - 1.0) * w_decode) / steps)


def service_time_grid_v1_ms(models: Sequence[ReplicaModel], width: int) -> np.ndarray:
    """v1 S(n) for n = 1..width of every model at once, shape (len(models), width), ms: service_time_v1_ms of
    each (columns beyond a model's N are computed too; callers mask them)."""
    params = v1_params(models)
    n = np.arange(1, width + 1, dtype=float)[None, :]
    terms = v1_grid_terms(params, n)
    return terms.steps * (params[:, 0:1] + n * terms.delta)
