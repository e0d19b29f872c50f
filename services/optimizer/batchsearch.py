"""Batch size as a decision (docs/model.md s4.1): per candidate, the batch size needing the fewest replicas within
the SLOs, and queue-analysis's OptimalConcurrency (the least batch size reaching near-peak throughput).

fewest_replica_batches() bisects every candidate's batch size at once (one vectorised sizing pass per step);
optimal_concurrency() is the onset search for one replica model. Rates requests/ms. Pure: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.optimizer.percentiles import percentile_per_row, subset
from services.optimizer.sizing import (
    HIGH_FRACTION,
    REL_TOLERANCE,
    TPS_FRACTION,
    Demand,
    Targets,
    replica_counts,
    size_replicas,
)
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_parts
from services.perfmodel.servicetime import QUEUE_TO_BATCH_RATIO, ReplicaModel, prefill_ms, service_time_ms

ONSET_EPSILON = 0.02
"""OptimalConcurrency's tolerance: the onset is the least N whose throughput is within epsilon / 2 of the peak."""
ONSET_MAX_BATCH = 256
"""OptimalConcurrency's search ceiling (queue-analysis's default m_max)."""


@dataclass(frozen=True, slots=True)
class BatchProblem:
    """One candidate's search: its replica model at the largest batch allowed (the memory rule's bound), the
    targets, the server's total rate (requests/ms), its minNumReplicas and whether its queue is fixed."""

    model: ReplicaModel
    targets: Targets
    rate_per_ms: float
    min_replicas: int
    fixed_queue: bool


def with_batch(model: ReplicaModel, batch: int, fixed_queue: bool) -> ReplicaModel:
    """``model`` at batch ``batch``; the queue keeps its ratio to the batch (Q = 10 N, or 1000 N under model v1)
    unless the server fixes it."""
    ratio = model.max_queue // model.max_batch if model.max_batch > 0 else QUEUE_TO_BATCH_RATIO
    queue = model.max_queue if fixed_queue else ratio * batch
    return replace(model, max_batch=batch, max_queue=queue)


def _meets(chains: ChainBatch, targets: Sequence[Targets], rate_per_ms: np.ndarray) -> np.ndarray:
    """Per row: one replica at arrival rate ``rate_per_ms`` is within its stable limit (0.999 mu(N), 0.9 of
    that with a throughput target) and meets its ITL, TTFT, blocking and percentile targets (docs/model.md s5,
    s3.2)."""
    metrics = chain_metrics(chains, rate_per_ms)
    parts = latency_parts(chains, metrics)
    itl, ttft = parts.itl_ms, parts.ttft_ms
    wanted = np.array([(t.itl_ms, t.ttft_ms, t.blocking, t.tps) for t in targets], dtype=float).reshape(-1, 4)
    limit = HIGH_FRACTION * chains.mu_full_per_ms * np.where(wanted[:, 3] > 0, TPS_FRACTION, 1.0)
    slack = 1 + REL_TOLERANCE
    ok = rate_per_ms <= limit * slack
    for k, value in enumerate((itl, ttft, metrics.blocking)):
        ok &= (wanted[:, k] <= 0) | (value <= wanted[:, k] * slack)
    entries = [(r, metric == "itl", q, value) for r, t in enumerate(targets)
               for metric, q, value in t.percentiles if value > 0]
    if entries:  # percentile targets (docs/model.md s3.2)
        rows, itl_kind, level, value = (np.array(column) for column in zip(*entries, strict=True))
        got = percentile_per_row(chains, rows, rate_per_ms[rows], itl_kind, level, subset(metrics, rows),
                                 subset(parts, rows))
        np.logical_and.at(ok, rows, got <= value * slack)
    return ok


def _resized(top: ChainBatch, rows: np.ndarray, batch: np.ndarray, queue: np.ndarray) -> ChainBatch:
    """Rows ``rows`` of ``top`` cut to batch sizes ``batch`` (each <= its N) and queues ``queue``: S(n) depends
    on n alone in every service model, so a smaller batch's chain is a prefix of the larger one's."""
    width = int(batch.max()) + 1
    weights = top.log_weights[rows, :width].copy()
    weights[np.arange(width)[None, :] > batch[:, None]] = -np.inf
    mu_full = np.exp(top.log_weights[rows, batch - 1] - top.log_weights[rows, batch])
    return ChainBatch(tuple(top.models[r] for r in rows), weights, batch.astype(float), queue.astype(float),
                      top.mu_one_per_ms[rows], mu_full, top.out_tokens[rows], top.prefill_base_ms[rows],
                      top.prefill_slope_ms[rows], top.chunked[rows], top.v1[rows], top.v1_params[rows])


def fewest_replica_batches(problems: Sequence[BatchProblem]) -> list[int]:
    """Per problem, the least batch size N in [1, N_max] at which the replica count needed at N_max,
    n* = max(ceil(Lambda / Theta*(N_max)), min), still meets the targets at Lambda / n* per replica
    (docs/model.md s4.1): the fewest replicas, ties to the smaller batch.

    Bisection on N for all problems together, one chain evaluation per step (about log2 N_max), each step's
    chains cut from those at N_max. It assumes a larger batch never hurts at a given rate; where that does not
    hold the answer still meets the targets with n* replicas. An infeasible problem keeps N_max.
    """
    if not problems:
        return []
    rate = np.array([p.rate_per_ms for p in problems])
    floor = np.array([p.min_replicas for p in problems], dtype=float)
    top = ChainBatch.build([p.model for p in problems])
    targets = [p.targets for p in problems]
    best = replica_counts(top, targets, Demand(rate, floor))
    lo = np.ones(len(problems), dtype=int)
    hi = np.array([p.model.max_batch for p in problems], dtype=int)
    lo[~np.isfinite(best)] = hi[~np.isfinite(best)]
    per_replica = np.where(np.isfinite(best), rate / np.where(np.isfinite(best), best, 1.0), 0.0)
    ratio = np.array([p.model.max_queue // max(p.model.max_batch, 1) for p in problems])
    fixed = np.array([p.fixed_queue for p in problems])
    queue_n = np.array([p.model.max_queue for p in problems])
    while True:
        active = np.flatnonzero(lo < hi)
        if active.size == 0:
            return hi.tolist()
        mid = (lo[active] + hi[active]) // 2
        queue = np.where(fixed[active], queue_n[active], ratio[active] * mid)
        chains = _resized(top, active, mid, queue)
        ok = _meets(chains, [targets[k] for k in active], per_replica[active])
        hi[active[ok]] = mid[ok]
        lo[active[~ok]] = mid[~ok] + 1


@dataclass(frozen=True, slots=True)
class Concurrency:
    """OptimalConcurrency's answer: the batch size (concurrency) ``batch``, its throughput (requests/ms), the
    peak throughput at the ceiling, the closed-form ITL- and prefill-bound batch sizes, and the model
    evaluations (distinct sizings) the search used. ``batch`` 0: the targets are unreachable at any batch size."""

    batch: int
    throughput_per_ms: float
    peak_per_ms: float
    itl_bound: int
    prefill_bound: int
    evaluations: int


def _largest_within(metric: Callable[[np.ndarray], np.ndarray], target: float, ceiling: int) -> int:
    """The largest n in [1, ceiling] with metric(n) <= target (1 when none; ceiling when no target)."""
    if target <= 0:
        return ceiling
    n = np.arange(1, ceiling + 1)
    within = np.flatnonzero(metric(n) <= target)
    return int(within[-1]) + 1 if within.size else 1


def optimal_concurrency(model: ReplicaModel, targets: Targets, ceiling: int = ONSET_MAX_BATCH,
                        epsilon: float = ONSET_EPSILON) -> Concurrency:
    """The least batch size whose sized throughput Theta*(N) is within epsilon / 2 of Theta*(ceiling)
    (queue-analysis v0.8 OptimalConcurrency; docs/model.md s4.1). ``model`` gives the service model, request
    shape and queue (its batch is ignored).

    The closed-form bounds (largest N whose single-iteration ITL, alpha + N delta, and prefill P(N) stay within
    the targets) bracket the search from below; it bisects to the exact onset, counting sizings. Percentile
    targets count like means in both: Theta*(N) is sized on them (size_replicas), and the bounds take the
    tightest ITL and TTFT target, mean or percentile (bound_targets).
    """
    seen: dict[int, float] = {}

    def throughput(n: int) -> float:
        if n not in seen:
            sized = size_replicas(ChainBatch.build([replace(model, max_batch=n)]), [targets])
            value = float(sized.capacity_per_ms[0])
            seen[n] = value if math.isfinite(value) else 0.0
        return seen[n]

    itl_target, ttft_target = bound_targets(targets)
    itl_bound = _largest_within(lambda n: _iteration_ms(model, n), itl_target, ceiling)
    prefill_bound = _largest_within(lambda n: prefill_ms(replace(model, max_batch=ceiling), n.astype(float)),
                                    ttft_target, ceiling)
    peak = throughput(ceiling)
    if peak <= 0:
        return Concurrency(0, 0.0, 0.0, itl_bound, prefill_bound, len(seen))
    threshold = (1 - epsilon / 2) * peak
    lo = max(1, min(itl_bound, prefill_bound))
    hi = min(ceiling, max(3 * min(itl_bound, prefill_bound), lo + 1))
    floor = lo
    if throughput(hi) < threshold:
        lo, hi = hi + 1, ceiling
    hi = _least_reaching(throughput, threshold, lo, hi)
    if hi == floor > 1:  # the onset is at the bounds' bracket: it may lie below (no target binds there)
        hi = _least_reaching(throughput, threshold, 1, floor)
    return Concurrency(hi, throughput(hi), peak, itl_bound, prefill_bound, len(seen))


def _least_reaching(throughput: Callable[[int], float], threshold: float, lo: int, hi: int) -> int:
    """The least n in [lo, hi] with throughput(n) >= threshold, by bisection (throughput(hi) must reach it)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if throughput(mid) >= threshold:
            hi = mid
        else:
            lo = mid + 1
    return hi


def bound_targets(targets: Targets) -> tuple[float, float]:
    """The (ITL, TTFT) targets, ms, that optimal_concurrency's closed-form bounds use: the tightest of the mean
    and the percentile targets of each (0 when none is set). A percentile, like the mean, is at most the
    longest gap of a full batch (one iteration, alpha + N delta) and at least the prefill, so below a bound
    neither kind of target can bind on that term; the tightest target gives the bound that holds for all."""
    def tightest(metric: str, mean: float) -> float:
        values = [v for v in (mean, *(value for m, _, value in targets.percentiles if m == metric)) if v > 0]
        return min(values, default=0.0)

    return tightest("itl", targets.itl_ms), tightest("ttft", targets.ttft_ms)


def _iteration_ms(model: ReplicaModel, batch: np.ndarray) -> np.ndarray:
    """One iteration's time with ``batch`` requests, alpha + n delta (the ITL of a full batch, closed form)."""

    full = replace(model, max_batch=int(batch.max()))
    per_request = service_time_ms(full)[batch - 1]
    prefill = prefill_ms(full, batch.astype(float))
    steps = max(model.out_tokens, 1.0)
    return (per_request - prefill) / steps
