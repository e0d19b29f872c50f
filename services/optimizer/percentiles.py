"""Predicted TTFT and ITL percentiles of a replica from its birth-death chain (docs/model.md s3.2).

Vectorised over the rows of a ChainBatch like queueing.chain_metrics: one arrival rate per row, any number of
percentiles. Rates are requests per ms, times ms, percentiles in (0, 100). Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypeVar

import numpy as np

from services.perfmodel.queueing import (
    _TINY_RATE_PER_MS,
    ChainBatch,
    ChainMetrics,
    Latency,
    chain_metrics,
    geometric_tail,
    latency_parts,
)

_Figures = TypeVar("_Figures", ChainMetrics, Latency)


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
    q = _levels(percentiles)
    idx = np.arange(len(chains)) if rows is None else rows
    rate = np.asarray(rate_per_ms, dtype=float)
    metrics = chain_metrics(chains, rate, idx)
    parts = latency_parts(chains, metrics, idx)
    dist = batch_distribution(chains, rate, idx)
    ttft, wait_q = _ttft_percentiles(parts, dist, q)
    itl = _itl_percentiles(chains, idx, metrics, parts, dist, q)
    return Percentiles(tuple(float(x) for x in q), ttft, itl, wait_q)


def _levels(percentiles: tuple[float, ...] | list[float] | np.ndarray) -> np.ndarray:
    """The percentiles as an array; ValueError unless each lies in (0, 100)."""
    q = np.asarray(percentiles, dtype=float)
    if q.size == 0 or np.any((q <= 0) | (q >= 100)):
        raise ValueError(f"percentiles must lie in (0, 100), got {list(percentiles)}")
    return q


def _ttft_percentiles(parts: Latency, dist: BatchDistribution, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, queue wait) percentiles ``q`` per row, shape (rows, len(q)), ms (predict_percentiles' TTFT)."""
    queue_wait = parts.queue_wait_ms
    tail = 1.0 - q[None, :] / 100.0  # (1, P)
    p_wait = dist.wait[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        # P(Wq > t) = p_wait exp(-t p_wait / E[Wq])  =>  t_q = E[Wq] / p_wait ln(p_wait / (1 - q))
        scale = np.where(p_wait > 0, queue_wait[:, None] / p_wait, 0.0)
        wait_q = np.where(p_wait > tail, scale * np.log(p_wait / tail), 0.0)
    wait_q = np.nan_to_num(wait_q, nan=0.0, posinf=np.inf)
    return (parts.ttft_ms - queue_wait)[:, None] + wait_q, wait_q


def _itl_percentiles(chains: ChainBatch, idx: np.ndarray, metrics: ChainMetrics, parts: Latency,
                     dist: BatchDistribution, q: np.ndarray) -> np.ndarray:
    """ITL percentiles ``q`` per row of ``idx``, shape (rows, len(q)), ms (predict_percentiles' ITL)."""
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
    return np.take_along_axis(values, first, axis=1)


def subset(figures: _Figures, index: np.ndarray) -> _Figures:
    """The entries ``index`` of a ChainMetrics or Latency (every field an array of shape (rows,))."""
    return type(figures)(*(getattr(figures, f.name)[index] for f in fields(figures)))


def percentile_per_row(chains: ChainBatch, rows: np.ndarray, rate_per_ms: np.ndarray, itl: np.ndarray,
                       percentile: np.ndarray, metrics: ChainMetrics | None = None,
                       parts: Latency | None = None) -> np.ndarray:
    """One figure per entry k, ms: the ITL (``itl[k]`` true) or TTFT percentile ``percentile[k]`` of chain row
    ``rows[k]`` at ``rate_per_ms[k]``, as predict_percentiles gives it. Shapes (entries,); ValueError for a
    percentile outside (0, 100).

    Faster than predict_percentiles for the sizing's many calls, same figures: ``metrics`` (chain_metrics of
    the entries at their rates, shape (entries,)) and ``parts`` (latency_parts of those, with ``metrics``
    only) are reused when given, and each entry gets only the distribution it asks for (ITL or TTFT), each
    distinct percentile computed once."""
    levels, column = np.unique(_levels(np.asarray(percentile, dtype=float)), return_inverse=True)
    rows, rate = np.asarray(rows), np.asarray(rate_per_ms, dtype=float)
    itl = np.asarray(itl, dtype=bool)
    if metrics is None:
        metrics, parts = chain_metrics(chains, rate, rows), None
    if parts is None:
        parts = latency_parts(chains, metrics, rows)
    out = np.empty(len(rows))
    for want_itl in (True, False):
        entries = np.flatnonzero(itl == want_itl)
        if entries.size == 0:
            continue
        dist = batch_distribution(chains, rate[entries], rows[entries])
        sub_parts = subset(parts, entries)
        if want_itl:
            table = _itl_percentiles(chains, rows[entries], subset(metrics, entries), sub_parts, dist, levels)
        else:
            table = _ttft_percentiles(sub_parts, dist, levels)[0]
        out[entries] = table[np.arange(entries.size), column[entries]]
    return out
