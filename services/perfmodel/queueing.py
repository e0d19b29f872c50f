"""One inference replica as a finite birth-death chain with state-dependent service (docs/model.md s2).

Vectorised over *rows*: a ChainBatch holds many replica models at once and chain_metrics / latency_ms solve
all of them at one arrival rate per row. States 0..N are explicit; the queue states N+1..C all have rate
mu(N), so their probabilities form a geometric series summed in closed form (width N+1, not C+1).
Rates are requests per **ms**, times **ms**. Pure: numpy only, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from services.core.model import ServiceModel
from services.perfmodel.servicetime import (
    ReplicaModel,
    prefill_grid_v03_ms,
    prefill_v07_ms,
    service_time_grid_v03_ms,
    service_time_grid_v1_ms,
    service_time_ms,
    v1_grid_terms,
    v1_params,
)

_TINY_RATE_PER_MS = 1e-200
"""Floor on the arrival rate so that log(rate) stays finite; metrics then take their zero-load limits."""
_SERIES_LIMIT = 1e-4
"""Below this |Q s| the tail mean uses its Taylor series (the closed form cancels)."""


@dataclass(frozen=True, slots=True)
class ChainBatch:
    """Many replica chains, explicit states 0..N padded to width max N + 1.

    ``log_weights[r, i]`` = -sum_{j<=i} log mu_r(j) for i <= N_r (-inf beyond), so that
    log p_r(i) = i log(lambda_r) + log_weights[r, i] up to normalisation (docs/model.md s2).
    """

    models: tuple[ReplicaModel, ...]
    log_weights: np.ndarray
    batch: np.ndarray
    queue: np.ndarray
    mu_one_per_ms: np.ndarray
    mu_full_per_ms: np.ndarray
    out_tokens: np.ndarray
    prefill_base_ms: np.ndarray
    prefill_slope_ms: np.ndarray
    chunked: np.ndarray
    v1: np.ndarray
    """Rows under model v1 (docs/model.md s3.1)."""
    v1_params: np.ndarray
    """servicetime.v1_params of every row, shape (rows, 9)."""

    @classmethod
    def build(cls, models: Sequence[ReplicaModel]) -> ChainBatch:
        """Precompute the chains of ``models`` (each needs N >= 1, K > 0); v0.3 rows in one array pass.

        Each distinct model is computed once; rows of equal models share its figures.
        """
        distinct = list(dict.fromkeys(models))
        if len(distinct) == len(models):
            return cls._build(models)
        first = {rm: k for k, rm in enumerate(distinct)}
        once, rows = cls._build(distinct), np.array([first[rm] for rm in models])
        return cls(tuple(models), once.log_weights[rows], once.batch[rows], once.queue[rows],
                   once.mu_one_per_ms[rows], once.mu_full_per_ms[rows], once.out_tokens[rows],
                   once.prefill_base_ms[rows], once.prefill_slope_ms[rows], once.chunked[rows], once.v1[rows],
                   once.v1_params[rows])

    @classmethod
    def _build(cls, models: Sequence[ReplicaModel]) -> ChainBatch:
        batch = np.array([rm.max_batch for rm in models], dtype=float)
        width = int(batch.max())
        states = np.arange(1, width + 1, dtype=float)
        log_times = np.full((len(models), width), np.inf)
        buckets = np.ceil(np.log2(batch + 1))
        v1 = np.array([rm.service_model == ServiceModel.V1 for rm in models], dtype=bool)
        for bucket in np.unique(buckets):  # similar widths together: little padding
            for is_v1, grid in ((False, service_time_grid_v03_ms), (True, service_time_grid_v1_ms)):
                rows = np.flatnonzero((buckets == bucket) & (v1 == is_v1))
                if rows.size:
                    cols = int(batch[rows].max())
                    log_times[rows, :cols] = np.log(grid([models[r] for r in rows], cols))
        for r, rm in enumerate(models):
            if rm.service_model == ServiceModel.V07:
                log_times[r, :rm.max_batch] = np.log(service_time_ms(rm))
        log_rates = np.log(states) - log_times
        log_weights = np.concatenate([np.zeros((len(models), 1)), -np.cumsum(log_rates, axis=1)], axis=1)
        log_weights[:, 1:][states > batch[:, None]] = -np.inf
        rows = np.arange(len(models))
        mu_one, mu_full = np.exp(log_rates[:, 0]), np.exp(log_rates[rows, batch.astype(int) - 1])
        base = prefill_grid_v03_ms(models, 0.0)
        slope = prefill_grid_v03_ms(models, 1.0) - base
        return cls(tuple(models), log_weights, batch,
                   np.array([rm.max_queue for rm in models], dtype=float), mu_one, mu_full,
                   np.array([rm.out_tokens for rm in models], dtype=float), base, slope,
                   np.array([rm.service_model == ServiceModel.V07 for rm in models]), v1, v1_params(models))

    def __len__(self) -> int:
        return len(self.models)


@dataclass(frozen=True, slots=True)
class ChainMetrics:
    """Steady-state figures per row (docs/model.md s2); all arrays of shape (rows,)."""

    throughput_per_ms: np.ndarray
    in_system: np.ndarray
    in_service: np.ndarray
    response_ms: np.ndarray
    service_ms: np.ndarray
    wait_ms: np.ndarray
    utilization: np.ndarray
    blocking: np.ndarray
    idle: np.ndarray
    """p(0), the chance the replica is empty."""


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """log(num / den); the caller silences divide/invalid warnings (0/0 and log 0 occur by design)."""
    return np.log(num / den)


def _select(mask: np.ndarray, if_true: Callable[[], np.ndarray], if_false: Callable[[], np.ndarray]) -> np.ndarray:
    """np.where(mask, if_true(), if_false()) for same-shape branches, evaluating only a branch some element takes."""
    if mask.all():
        return if_true()
    if not mask.any():
        return if_false()
    return np.where(mask, if_true(), if_false())


def geometric_tail(log_ratio: np.ndarray, queue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For x = exp(s), k = 1..Q: (log sum x^k, mean k under weights x^k); shapes as ``log_ratio``.

    Stable for any s (expm1 forms, a Taylor series near s = 0); Q = 0 gives (-inf, 0). Elementwise: a form
    no element needs is not evaluated.
    """
    s, q = log_ratio, np.maximum(queue, 1.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        neg = np.minimum(s, -1e-300)
        pos = np.maximum(s, 1e-300)
        log_sum = _select(s < 0, lambda: s + _log_ratio(np.expm1(q * neg), np.expm1(neg)),
                          lambda: q * pos + _log_ratio(np.expm1(-q * pos), np.expm1(-pos)))
        zero = s == 0
        if zero.any():
            log_sum = np.where(zero, np.log(q), log_sum)
        qs = q * s
        mean = _select(np.abs(qs) < _SERIES_LIMIT, lambda: (q + 1) / 2 + s * (q * q - 1) / 12,
                       lambda: -1.0 / np.expm1(s) + q / np.expm1(qs) + q)
    empty = queue <= 0
    if not empty.any():
        return log_sum, mean
    return np.where(empty, -np.inf, log_sum), np.where(empty, 0.0, mean)


def chain_metrics(chains: ChainBatch, rate_per_ms: np.ndarray, rows: np.ndarray | None = None,
                  segments: Sequence[slice] | None = None) -> ChainMetrics:
    """Solve the chains of ``rows`` (all when None) at one arrival rate each (requests/ms, shape (rows,)).

    Probabilities are handled as logs normalised by their maximum, so nothing overflows even far above
    saturation; the queue states come from geometric_tail. A rate <= 0 yields the zero-load limits.
    ``segments`` (consecutive slice(start, stop) covering ``rows`` in order; default one for all) solve
    their explicit states 0..max N each at their own width: every figure is then exactly that of solving
    each segment in a call of its own.
    """
    idx = np.arange(len(chains)) if rows is None else rows
    batch, queue = chains.batch[idx], chains.queue[idx]
    log_rate = np.log(np.maximum(np.asarray(rate_per_ms, dtype=float), _TINY_RATE_PER_MS))
    step = log_rate - np.log(chains.mu_full_per_ms[idx])
    tail_log_sum, tail_mean = geometric_tail(step, queue)
    at_batch = batch * log_rate + chains.log_weights[idx, batch.astype(int)]  # log p(N), unnormalised
    log_tail = at_batch + tail_log_sum
    parts = [slice(0, len(idx))] if segments is None else segments
    widths = (np.maximum.reduceat(batch, [part.start for part in parts]) + 1).astype(int).tolist()
    top, head_sum, head_moment = np.empty(len(idx)), np.empty(len(idx)), np.empty(len(idx))
    for part, width in zip(parts, widths, strict=True):
        states = np.arange(width, dtype=float)
        log_p = states * log_rate[part, None]
        log_p += chains.log_weights[idx[part], :width]
        top[part] = part_top = np.maximum(np.maximum.reduce(log_p, axis=1), log_tail[part])
        p = np.exp(np.subtract(log_p, part_top[:, None], out=log_p), out=log_p)  # in place: log_p is done
        head_sum[part] = np.add.reduce(p, axis=1)
        head_moment[part] = p @ states
    tail_weight = np.exp(log_tail - top)
    total = head_sum + tail_weight
    tail = tail_weight / total
    head = head_moment / total
    in_system = head + tail * (batch + tail_mean)
    in_service = head + tail * batch
    blocking = np.exp(at_batch + queue * step - top) / total
    rate = np.exp(log_rate)
    throughput = rate * (1.0 - blocking)
    response, service = in_system / throughput, in_service / throughput
    return ChainMetrics(throughput, in_system, in_service, response, service,
                        np.maximum(response - service, 0.0), in_service / batch, blocking, np.exp(-top) / total)


def wait_factor(arrival_c2: np.ndarray, service_c2: np.ndarray, servers: np.ndarray, utilization: np.ndarray
                ) -> np.ndarray:
    """W(G/G/c) / W(M/M/c): (Ca2 + Cs2) / 2 (Allen-Cunneen) plus Cosmetatos' correction of M/D/c,
    Ca2 (1 - Cs2) g / 2 with g = (1 - rho)(c - 1)(sqrt(4 + 5c) - 2) / (16 rho c) (docs/model.md s3.1).

    Arrays broadcast together: inter-arrival and service-time C2 (Cs2 <= 1), c servers (the batch N),
    utilization rho in (0, 1]. Poisson arrivals and exponential service give 1; fixed service about 1/2.
    """
    rho = np.clip(utilization, 1e-9, 1.0)
    c = np.maximum(servers, 1.0)
    g = (1.0 - rho) * (c - 1.0) * (np.sqrt(4.0 + 5.0 * c) - 2.0) / (16.0 * rho * c)
    return (arrival_c2 + service_c2) / 2.0 + arrival_c2 * (1.0 - service_c2) * g / 2.0


@dataclass(frozen=True, slots=True)
class Latency:
    """Per row (shape (rows,)), ms: mean ITL, TTFT, the wait before the first iteration, the prefill, the part
    of the wait spent queueing for a batch slot (the wait without v1's residual iteration), and under v1 the
    prefill chunks per request c and a chunk's work wP / c (0 for the other models)."""

    itl_ms: np.ndarray
    ttft_ms: np.ndarray
    wait_ms: np.ndarray
    prefill_ms: np.ndarray
    queue_wait_ms: np.ndarray
    chunks: np.ndarray
    chunk_ms: np.ndarray


def latency_parts(chains: ChainBatch, metrics: ChainMetrics, rows: np.ndarray | None = None) -> Latency:
    """ITL, TTFT and their parts per row.

    v0.3 / v0.7 (docs/model.md s3): ITL = (Sbar - P(X)) / K, TTFT = W + P(X) + ITL, W the chain's wait.
    v1 (docs/model.md s3.1): with s = c + K - 1 iterations per request and delta its mean work per iteration,
    the others' part of an iteration is B = Sbar / s - delta; prefill P = c B + wP, ITL = B + wD;
    wait = W wait_factor(Ca2, Cs2, N, X / N) + the rest of the iteration in flight at arrival,
    ((1 - p(0)) Sbar / s + Theta c (wP / c)^2) / 2; TTFT = wait + P + the perfParms' ttft_overhead.
    """
    idx = np.arange(len(chains)) if rows is None else rows
    prefill = chains.prefill_base_ms[idx] + chains.prefill_slope_ms[idx] * metrics.in_service
    for k in np.flatnonzero(chains.chunked[idx]):
        prefill[k] = float(prefill_v07_ms(chains.models[idx[k]], metrics.in_service[k]))
    itl = (metrics.service_ms - prefill) / chains.out_tokens[idx]
    wait = metrics.wait_ms.copy()
    queue_wait = metrics.wait_ms.copy()
    chunks, chunk_ms = np.zeros(len(idx)), np.zeros(len(idx))
    ttft_extra = itl.copy()  # v0.3 / v0.7 add an ITL to the TTFT
    v1 = np.flatnonzero(chains.v1[idx])
    if v1.size:
        params = chains.v1_params[idx[v1]]
        batch = np.maximum(np.rint(metrics.in_service[v1]), 1.0)[:, None]
        terms = v1_grid_terms(params, batch)
        steps, delta = terms.steps[:, 0], terms.delta[:, 0]
        step_ms = metrics.service_ms[v1] / steps
        others = step_ms - delta
        prefill[v1] = terms.chunks[:, 0] * others + terms.prefill_work[:, 0]
        itl[v1] = others + terms.decode_work[:, 0]
        out_tokens, out_c2, arrival_c2 = params[:, 4], params[:, 5], params[:, 6]
        service_c2 = np.minimum(out_c2 * out_tokens * out_tokens / (steps * steps), 1.0)
        factor = wait_factor(arrival_c2, service_c2, chains.batch[idx[v1]], metrics.utilization[v1])
        chunks[v1] = terms.chunks[:, 0]
        chunk_ms[v1] = terms.prefill_work[:, 0] / terms.chunks[:, 0]
        residual = ((1.0 - metrics.idle[v1]) * step_ms
                    + metrics.throughput_per_ms[v1] * chunks[v1] * chunk_ms[v1] * chunk_ms[v1]) / 2.0
        queue_wait[v1] = metrics.wait_ms[v1] * factor
        wait[v1] = queue_wait[v1] + residual
        ttft_extra[v1] = params[:, 8]  # v1: the client's overhead on the first token, if any
    return Latency(itl, wait + prefill + ttft_extra, wait, prefill, queue_wait, chunks, chunk_ms)


def latency_ms(chains: ChainBatch, metrics: ChainMetrics, rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(ITL, TTFT) per row, ms (latency_parts)."""
    parts = latency_parts(chains, metrics, rows)
    return parts.itl_ms, parts.ttft_ms


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
    """Evaluate one replica model at ``rate_per_ms`` (requests/ms); max_rate is 0.999 mu(N) (docs/model.md s5)."""
    chains = ChainBatch.build([rm])
    metrics = chain_metrics(chains, np.array([rate_per_ms]))
    parts = latency_parts(chains, metrics)
    return PointAnalysis(rate_per_ms, float(metrics.throughput_per_ms[0]), float(parts.wait_ms[0]),
                         float(metrics.service_ms[0]), float(parts.itl_ms[0]), float(parts.ttft_ms[0]),
                         float(metrics.utilization[0]), float(metrics.blocking[0]),
                         0.999 * float(chains.mu_full_per_ms[0]))

