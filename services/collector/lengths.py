"""The variability of output lengths from vLLM's per-request generation-token histogram (docs/contract.md s4).

vLLM counts every finished request's output tokens in ``vllm:request_generation_tokens`` with coarse 1-2-5
buckets (..., 500, 1000, 2000, ...). The mean is exact (sum / count); the squared coefficient of variation C2
(variance / mean^2), which model v1 needs (docs/model.md s3.1), is estimated by fitting a gamma distribution
with that mean to the bucket counts (maximum likelihood for interval-censored data: each request is known
to lie in its bucket). A gamma of shape k has C2 = 1 / k: exponential lengths give 1, fixed ones near 0.
Pure: numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import gammainc

MIN_C2, MAX_C2 = 0.001, 20.0
"""Range of the estimate: below 0.001 the buckets cannot tell lengths apart from fixed ones."""
MIN_REQUESTS = 1e-9
"""Bucket rates below this (requests/s in the window) count as no data."""


def bucket_counts(cumulative: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prometheus cumulative buckets ((le, count), any order, +Inf included or not) -> (lower bounds, upper
    bounds, counts) of the non-empty intervals. Counts that decrease with le (resets) are clipped to 0."""
    ordered = sorted((le, max(count, 0.0)) for le, count in cumulative if math.isfinite(count))
    lows, highs, counts, previous_le, previous = [], [], [], 0.0, 0.0
    for le, count in ordered:
        mass = count - previous
        if mass > MIN_REQUESTS:
            lows.append(previous_le)
            highs.append(le)
            counts.append(mass)
        previous_le, previous = le, max(count, previous)
    return np.array(lows), np.array(highs), np.array(counts)


def out_tokens_c2(cumulative: Sequence[tuple[float, float]], mean: float | None) -> float | None:
    """C2 of the output length: the gamma distribution of mean ``mean`` (tokens) most likely to give the
    histogram's bucket counts ``cumulative`` ((le, cumulative count or rate), as Prometheus exposes them).

    None when the mean is unknown or not positive or the histogram holds no request. The estimate is clipped
    into [MIN_C2, MAX_C2].
    """
    if mean is None or not math.isfinite(mean) or mean <= 0:
        return None
    lows, highs, counts = bucket_counts(cumulative)
    if counts.size == 0:
        return None

    def negative_log_likelihood(log_shape: float) -> float:
        shape = math.exp(log_shape)
        scale = mean / shape
        upper = np.where(np.isinf(highs), 1.0, gammainc(shape, np.where(np.isinf(highs), 0.0, highs) / scale))
        probability = upper - gammainc(shape, lows / scale)
        return float(-np.sum(counts * np.log(np.maximum(probability, 1e-300))))

    found = minimize_scalar(negative_log_likelihood, bounds=(math.log(1 / MAX_C2), math.log(1 / MIN_C2)),
                            method="bounded", options={"xatol": 1e-4})
    return float(min(max(math.exp(-found.x), MIN_C2), MAX_C2))
