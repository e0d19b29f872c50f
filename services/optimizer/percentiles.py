"""Predicted TTFT and ITL percentiles of a replica from its birth-death chain (docs/model.md s3.2).

Vectorised over the rows of a ChainBatch like queueing.chain_metrics: one arrival rate per row, any number of
percentiles. Rates are requests per ms, times ms, percentiles in (0, 100). Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.perfmodel.queueing import (
    _TINY_RATE_PER_MS,
    ChainBatch,
    chain_metrics,
    geometric_tail,
    latency_parts,
)


@dataclass(frozen=True, slots=True)
class BatchDistribution:
    """Per row: ``batch[r, n]`` = P(n requests in the batch), n = 0..width-1 (the time average; the queue
    states count as a full batch N), and ``wait`` = P(an admitted arrival finds all N slots taken)."""

    batch: np.ndarray
    wait: np.ndarray


def batch_distribution(chains: ChainBatch, rate_per_ms: np.ndarray, rows: np.ndarray | None = None
                       ) -> BatchDistribution:
    """The time-average batch-size distribution and the chance to wait of ``rows`` at ``rate_per_ms``
    (shape (rows,)), from the chain's stationary probabilities (docs/model.md s2); Poisson arrivals see time
    averages (PASTA), so the chance to wait is P(i >= N | i < C)."""
    idx = np.arange(len(chains)) if rows is None else rows
    batch, queue = chains.batch[idx], chains.queue[idx]
    log_rate = np.log(np.maximum(np.asarray(rate_per_ms, dtype=float), _TINY_RATE_PER_MS))
    step = log_rate - np.log(chains.mu_full_per_ms[idx])
    tail_log_sum, _ = geometric_tail(step, queue)
    width = int(batch.max()) + 1
    states = np.arange(width, dtype=float)
    log_p = states * log_rate[:, None] + chains.log_weights[idx, :width]
    at_batch = batch * log_rate + chains.log_weights[idx, batch.astype(int)]
    log_tail = at_batch + tail_log_sum
    top = np.maximum(log_p.max(axis=1), log_tail)
    p = np.exp(log_p - top[:, None])
    tail = np.exp(log_tail - top)
    blocked = np.exp(at_batch + queue * step - top)
    total = p.sum(axis=1) + tail
    full = np.exp(at_batch - top) + tail  # p(N) + the queue states
    p[np.arange(len(idx)), batch.astype(int)] = full
    p /= total[:, None]
    admitted = np.maximum(total - blocked, 1e-300)
    return BatchDistribution(p, np.clip((full - blocked) / admitted, 0.0, 1.0))


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Per row and percentile (shape (rows, len(percentiles))), ms: TTFT, ITL (token gaps) and the queue
    wait (the part of TTFT spent waiting for a batch slot)."""

    percentiles: tuple[float, ...]
    ttft_ms: np.ndarray
    itl_ms: np.ndarray
    queue_wait_ms: np.ndarray

    def figures(self, row: int) -> dict[str, float]:
        """Row ``row``'s TTFT and ITL percentiles keyed as Allocation's fields: ``ttft_ms_p50`` .. ``itl_ms_p99``."""
        return {f"{metric}_ms_p{q:g}": float(table[row, j])
                for metric, table in (("ttft", self.ttft_ms), ("itl", self.itl_ms))
                for j, q in enumerate(self.percentiles)}


def _gap_shape(chains: ChainBatch, idx: np.ndarray, width: int) -> np.ndarray:
    """S(n) per row for n = 1..width-1 (column n), the service time at batch n, which the gaps scale with;
    from mu(n) = n / S(n), log mu(n) = log_weights[n-1] - log_weights[n] (inf beyond a row's N)."""
    lw = chains.log_weights[idx, :width]
    with np.errstate(invalid="ignore"):
        log_mu = lw[:, :-1] - lw[:, 1:]
    n = np.arange(1, width, dtype=float)
    shape = np.full((len(idx), width), np.inf)
    shape[:, 1:] = np.where(np.isfinite(log_mu), n / np.exp(np.where(np.isfinite(log_mu), log_mu, 0.0)), np.inf)
    return shape


def predict_percentiles(chains: ChainBatch, rate_per_ms: np.ndarray, percentiles: tuple[float, ...] | list[float],
                        rows: np.ndarray | None = None) -> Percentiles:
    """TTFT, ITL and queue-wait percentiles of ``rows`` at ``rate_per_ms`` (docs/model.md s3.2).

    TTFT = d + Wq: d = mean TTFT - mean queue wait (the residual iteration, the prefill and any overhead,
    taken at their means) and Wq the queue wait: 0 with probability 1 - P(wait), else exponential with the
    mean that makes E[Wq] the model's mean queue wait (W x the wait factor under v1), the M/M/c form of the
    chain's geometric queue states (exact for one server with exponential service: M/M/1's
    P(Wq > t) = rho exp(-mu (1 - rho) t)). ITL: a token emitted while n requests share the batch waits an
    iteration, proportional to S(n); tokens are emitted at a rate proportional to p(n) mu(n), so the gap is
    S(n) ITL / Sbar with probability p(n) mu(n) / Theta (the token-weighted batch distribution), whose mean
    is the model's mean ITL. Under v1 a share Theta c gap(n) of the gaps (an iteration that also carries
    a prefill chunk) is wP / c longer, the others shorter so that the mean stays. ValueError for a
    percentile outside (0, 100).
    """
    q = np.asarray(percentiles, dtype=float)
    if q.size == 0 or np.any((q <= 0) | (q >= 100)):
        raise ValueError(f"percentiles must lie in (0, 100), got {list(percentiles)}")
    idx = np.arange(len(chains)) if rows is None else rows
    rate = np.asarray(rate_per_ms, dtype=float)
    metrics = chain_metrics(chains, rate, idx)
    parts = latency_parts(chains, metrics, idx)
    queue_wait = parts.queue_wait_ms
    dist = batch_distribution(chains, rate, idx)
    tail = 1.0 - q[None, :] / 100.0  # (1, P)
    p_wait = dist.wait[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        # P(Wq > t) = p_wait exp(-t p_wait / E[Wq])  =>  t_q = E[Wq] / p_wait ln(p_wait / (1 - q))
        scale = np.where(p_wait > 0, queue_wait[:, None] / p_wait, 0.0)
        wait_q = np.where(p_wait > tail, scale * np.log(p_wait / tail), 0.0)
    wait_q = np.nan_to_num(wait_q, nan=0.0, posinf=np.inf)
    ttft = (parts.ttft_ms - queue_wait)[:, None] + wait_q

    width = dist.batch.shape[1]
    shape = _gap_shape(chains, idx, width)[:, 1:]  # S(n), n = 1..width-1
    mu = np.where(np.isfinite(shape), np.arange(1, width)[None, :] / shape, 0.0)
    weight = dist.batch[:, 1:] * mu
    weight = np.where(weight.sum(axis=1, keepdims=True) > 0, weight, np.eye(1, width - 1))  # empty: n = 1
    gap = np.where(np.isfinite(shape), shape * (parts.itl_ms / metrics.service_ms)[:, None], np.inf)
    # v1: an iteration that carries a prefill chunk lasts wP / c longer; the share of the gaps at batch n
    # in such iterations is pi(n) = min(Theta c gap(n), 1); the other gaps are shorter by pi(n) wP / c so
    # that the mean stays the model's ITL.
    chunk = parts.chunk_ms[:, None]
    prefills = (metrics.throughput_per_ms * parts.chunks)[:, None]  # 0 outside v1: no gap carries a chunk
    finite = np.isfinite(gap)
    share = np.where(finite, np.minimum(prefills * np.where(finite, gap, 0.0), 1.0), 0.0)  # no 0 x inf
    plain = gap - share * chunk
    values = np.concatenate([plain, plain + chunk], axis=1)
    masses = np.concatenate([weight * (1.0 - share), weight * share], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    values, masses = np.take_along_axis(values, order, axis=1), np.take_along_axis(masses, order, axis=1)
    cum = np.cumsum(masses, axis=1) / masses.sum(axis=1, keepdims=True)
    # the smallest gap whose cumulative token share reaches q
    first = (cum[:, :, None] >= (q / 100.0)[None, None, :] - 1e-12).argmax(axis=1)  # (rows, P)
    itl = np.take_along_axis(values, first, axis=1)
    return Percentiles(tuple(float(x) for x in q), ttft, itl, wait_q)


def percentile_per_row(chains: ChainBatch, rows: np.ndarray, rate_per_ms: np.ndarray, itl: np.ndarray,
                       percentile: np.ndarray) -> np.ndarray:
    """One figure per entry k, ms: the ITL (``itl[k]`` true) or TTFT percentile ``percentile[k]`` of chain row
    ``rows[k]`` at ``rate_per_ms[k]`` (predict_percentiles, each distinct percentile computed once). Shapes
    (entries,); ValueError for a percentile outside (0, 100)."""
    levels, column = np.unique(np.asarray(percentile, dtype=float), return_inverse=True)
    got = predict_percentiles(chains, rate_per_ms, levels.tolist(), rows)
    table = np.where(np.asarray(itl, dtype=bool)[:, None], got.itl_ms, got.ttft_ms)
    return table[np.arange(len(rows)), column]
