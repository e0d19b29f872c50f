"""Sizing a replica: the batch-size rule and the largest arrival rate that meets the SLOs (docs/model.md s4-s5).

size_replicas() runs every candidate's bisections together, vectorised over rows of a ChainBatch. Rates are
requests per ms, times ms. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.core.bounds import MAX_BATCH_SIZE
from services.core.model import ModelPerf, ModelTarget
from services.optimizer.percentiles import percentile_per_row, subset
from services.perfmodel.queueing import ChainBatch, ChainMetrics, chain_metrics, latency_parts

LOW_FRACTION = 0.001
"""lambda_min = 0.001 mu(1) (docs/model.md s5)."""
HIGH_FRACTION = 0.999
"""lambda_max = 0.999 mu(N) (docs/model.md s5)."""
TPS_FRACTION = 0.9
"""lambda_tps = 0.9 lambda_max when a throughput target is set (docs/model.md s5)."""
REL_TOLERANCE = 1e-6
MAX_STEPS = 100

_ITL, _TTFT, _BLOCK, _ITL_PERCENTILE, _TTFT_PERCENTILE = 0, 1, 2, 3, 4
PERCENTILE_KINDS = {"itl": _ITL_PERCENTILE, "ttft": _TTFT_PERCENTILE}
"""bisect_rates' kind of a percentile target of ITL or TTFT."""


def batch_size(server_max_batch: int, perf: ModelPerf, out_tokens: float) -> int:
    """N: the server's max batch if > 0, else max(floor(maxBatchSize x atTokens / K), 1) (docs/model.md s4),
    at most bounds.MAX_BATCH_SIZE (a replica's model never grows past it, however short the requests).

    ``out_tokens`` (K) must be > 0. Example: 76 x 512 // 1024 = 38.
    """
    if server_max_batch > 0:
        return min(server_max_batch, MAX_BATCH_SIZE)
    return min(max(int(perf.max_batch_size * perf.at_tokens // max(int(out_tokens), 1)), 1), MAX_BATCH_SIZE)


@dataclass(frozen=True, slots=True)
class Targets:
    """SLO targets of one sizing row: mean ITL and TTFT in ms, throughput in tokens/s, loss probability,
    and ``percentiles``: (``"itl"`` or ``"ttft"``, percentile in (0, 100), ms) each (docs/model.md s3.2).

    0 disables a target.
    """

    itl_ms: float = 0.0
    ttft_ms: float = 0.0
    tps: float = 0.0
    blocking: float = 0.0
    percentiles: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def of(cls, target: ModelTarget, blocking_bound: float = 0.0) -> Targets:
        """Targets of a class's model target (means and percentiles) plus the optional blocking bound."""
        return cls(target.slo_itl_ms, target.slo_ttft_ms, target.slo_tps, blocking_bound,
                   tuple((metric, float(q), value) for metric, q, value in target.percentile_targets()))


def _metric(chains: ChainBatch, rows: np.ndarray, rate: np.ndarray, kind: np.ndarray,
            segments: list[slice], percentile: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ITL, TTFT, blocking, an ITL or a TTFT percentile per row (by ``kind``), throughput in requests/ms) at
    ``rate``, each segment of rows solved at its own width; ``percentile[k]`` is row k's percentile for kinds 3
    and 4."""
    metrics = chain_metrics(chains, rate, rows, segments)
    parts = latency_parts(chains, metrics, rows)
    value = np.choose(np.minimum(kind, _BLOCK), [parts.itl_ms, parts.ttft_ms, metrics.blocking])
    wanted = np.flatnonzero(kind >= _ITL_PERCENTILE)
    if wanted.size and percentile is not None:
        value[wanted] = percentile_per_row(chains, rows[wanted], rate[wanted], kind[wanted] == _ITL_PERCENTILE,
                                           percentile[wanted], subset(metrics, wanted), subset(parts, wanted))
    return value, metrics.throughput_per_ms


def _segments(groups: np.ndarray) -> list[slice]:
    """Slices of equal consecutive labels in ``groups`` (non-decreasing)."""
    cuts = [0, *(np.flatnonzero(groups[1:] != groups[:-1]) + 1).tolist(), len(groups)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _close(value: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.abs(value - target) <= REL_TOLERANCE * target


def replicas_needed(load_per_ms: np.ndarray, capacity_per_ms: np.ndarray, min_replicas: np.ndarray) -> np.ndarray:
    """max(ceil(load / capacity), min, 1) per row (docs/model.md s5), floats; +inf where the capacity is NaN
    or 0 (infeasible). Shapes broadcast; requests/ms."""
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.ceil(load_per_ms / capacity_per_ms)
    needed = np.where(np.isfinite(needed) & (capacity_per_ms > 0), needed, np.inf)
    return np.maximum(np.maximum(needed, min_replicas), 1)


@dataclass(frozen=True, slots=True)
class Demand:
    """Per bisection row, the server's total load (requests/ms) and its minNumReplicas: given to bisect_rates
    when only the replica count replicas_needed(load, Theta(rate), min) of the sized rate is wanted."""

    load_per_ms: np.ndarray
    min_replicas: np.ndarray


def bisect_rates(chains: ChainBatch, rows: np.ndarray, kind: np.ndarray, target: np.ndarray,
                 percentile: np.ndarray | None = None, demand: Demand | None = None) -> np.ndarray:
    """Largest rate per row whose metric ``kind`` (0 ITL, 1 TTFT, 2 blocking, 3 an ITL percentile, 4 a TTFT
    percentile, ``percentile[k]`` in (0, 100) for row k) meets ``target`` (docs/model.md s5, s3.2).

    Returns requests/ms per row; NaN when even lambda_min misses the target (infeasible). Ends within 1e-6
    relative win first; a target above f(lambda_max) gives lambda_max; else at most 100 bisection steps,
    stopping at |f - target| <= 1e-6 target, returning the last midpoint (a row whose bracket has shrunk to
    two adjacent floats stops early with the midpoint the remaining steps would repeat). Rows are solved in groups of
    similar batch size (little padding), all groups stepping together, one chain_metrics call per step.

    With ``demand`` (row k's load and minNumReplicas) only the replica count of the answer is kept: a row also
    stops once replicas_needed(load, Theta(rate), min) is the same at both ends of its bracket [lo, hi], and
    then returns lo (meeting its target). The exact answer lies in that bracket and Theta rises with the rate,
    so every rate in it, and the minimum of it with any other rates, needs that same count.
    """
    if len(rows) == 0:
        return np.full(0, np.nan)
    group = np.ceil(np.log2(chains.batch[rows] + 1))
    order = np.argsort(group, kind="stable")
    rows, kind, target, group = rows[order], kind[order], target[order], group[order]
    level = np.zeros(len(rows)) if percentile is None else np.asarray(percentile, dtype=float)[order]
    every = _segments(group)
    lo = LOW_FRACTION * chains.mu_one_per_ms[rows]
    hi = HIGH_FRACTION * chains.mu_full_per_ms[rows]
    (f_lo, theta_lo), (f_hi, theta_hi) = (_metric(chains, rows, lo, kind, every, level),
                                          _metric(chains, rows, hi, kind, every, level))
    result = np.full(len(rows), np.nan)
    at_hi = _close(f_hi, target) | (target > f_hi)
    result[at_hi] = hi[at_hi]
    at_lo = _close(f_lo, target)
    result[at_lo] = lo[at_lo]
    active = np.flatnonzero(~at_lo & ~at_hi & (target >= f_lo))
    load = None if demand is None else np.asarray(demand.load_per_ms, dtype=float)[order]
    floor = None if demand is None else np.asarray(demand.min_replicas, dtype=float)[order]
    for _ in range(MAX_STEPS):
        if load is not None and active.size:
            fixed = (replicas_needed(load[active], theta_lo[active], floor[active])
                     == replicas_needed(load[active], theta_hi[active], floor[active]))
            result[active[fixed]] = lo[active[fixed]]
            active = active[~fixed]
        if active.size == 0:
            break
        mid = 0.5 * (lo[active] + hi[active])
        # lo and hi adjacent floats: the midpoint is one of them, so every further step keeps lo, hi and the
        # midpoint as they are (a step moves lo or hi to the midpoint); the result is that midpoint.
        settled = (mid == lo[active]) | (mid == hi[active])
        result[active[settled]] = mid[settled]
        active, mid = active[~settled], mid[~settled]
        if active.size == 0:
            break
        value, theta = _metric(chains, rows[active], mid, kind[active], _segments(group[active]), level[active])
        result[active] = mid
        below = value < target[active]
        lo[active[below]], theta_lo[active[below]] = mid[below], theta[below]
        hi[active[~below]], theta_hi[active[~below]] = mid[~below], theta[~below]
        active = active[~_close(value, target[active])]
    unsorted = np.empty_like(result)
    unsorted[order] = result
    return unsorted


@dataclass(frozen=True, slots=True)
class Sizing:
    """Per row: the sized rate lambda* and the per-replica capacity Theta(lambda*), requests/ms (NaN =
    infeasible), and the metrics at lambda*."""

    rate_per_ms: np.ndarray
    capacity_per_ms: np.ndarray
    metrics: ChainMetrics

    @property
    def feasible(self) -> np.ndarray:
        """Boolean per row: some positive rate meets every target."""
        return ~np.isnan(self.rate_per_ms)


def _sized_rates(chains: ChainBatch, targets: Sequence[Targets], demand: Demand | None = None) -> np.ndarray:
    """lambda* per chain row, NaN when infeasible (size_replicas); with ``demand`` (per chain row) each
    bisection may stop once the replica count is known (bisect_rates), so only that count is exact."""
    count = len(chains)
    limits = HIGH_FRACTION * chains.mu_full_per_ms
    tps = np.array([t.tps for t in targets], dtype=float)
    best = np.where(tps > 0, TPS_FRACTION * limits, limits)
    wanted = np.array([[t.itl_ms, t.ttft_ms, t.blocking] for t in targets], dtype=float).reshape(count, 3)
    rows, kinds = np.nonzero(wanted > 0)
    values, levels = wanted[rows, kinds], np.zeros(len(rows))
    extra = [(r, PERCENTILE_KINDS[metric], q, value) for r, t in enumerate(targets)
             for metric, q, value in t.percentiles if value > 0]
    if extra:
        more = np.array(extra, dtype=float).reshape(-1, 4)
        rows = np.concatenate([rows, more[:, 0].astype(int)])
        kinds = np.concatenate([kinds, more[:, 1].astype(int)])
        levels = np.concatenate([levels, more[:, 2]])
        values = np.concatenate([values, more[:, 3]])
    per_row = None if demand is None else Demand(np.asarray(demand.load_per_ms, dtype=float)[rows],
                                                np.asarray(demand.min_replicas, dtype=float)[rows])
    rates = bisect_rates(chains, rows, kinds, values, levels, per_row)
    np.minimum.at(best, rows, np.where(np.isnan(rates), -np.inf, rates))
    best[np.isneginf(best)] = np.nan
    return best


def size_replicas(chains: ChainBatch, targets: Sequence[Targets]) -> Sizing:
    """lambda* = min(lambda_ITL, lambda_TTFT, lambda_tps[, lambda_block], the rates meeting each percentile
    target) and Theta(lambda*) per chain row.

    ``targets[r]`` applies to row r. Shapes (rows,); requests/ms; NaN marks infeasible rows (docs/model.md s5).
    """
    best = _sized_rates(chains, targets)
    limits = HIGH_FRACTION * chains.mu_full_per_ms
    safe = np.where(np.isnan(best), limits, best)
    metrics = chain_metrics(chains, safe)
    capacity = np.where(np.isnan(best), np.nan, metrics.throughput_per_ms)
    return Sizing(best, capacity, metrics)


def replica_counts(chains: ChainBatch, targets: Sequence[Targets], demand: Demand) -> np.ndarray:
    """replicas_needed(load, Theta(lambda*), min) per chain row (floats, +inf when infeasible): the count
    size_replicas' capacity gives, with bisections stopped as soon as that count is known (bisect_rates).

    ``targets[r]`` and ``demand``'s entries r apply to row r; loads in requests/ms.
    """
    best = _sized_rates(chains, targets, demand)
    safe = np.where(np.isnan(best), HIGH_FRACTION * chains.mu_full_per_ms, best)
    capacity = np.where(np.isnan(best), np.nan, chain_metrics(chains, safe).throughput_per_ms)
    return replicas_needed(np.asarray(demand.load_per_ms, dtype=float), capacity, demand.min_replicas)
