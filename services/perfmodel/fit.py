"""Fitting perfParms (alpha, beta, gamma and, for model v1, the client's TTFT overhead) to measured
benchmarks (docs/model.md s11).

predict() replays measured points (a steady arrival rate each) through the queueing model; fit() finds the
perfParms that minimise the squared relative errors of mean TTFT and ITL (scipy's least_squares, bounded),
starting from a linear least-squares fit of the zero-load formulas. Errors are reported as the paper's
mean |pred - meas| / mean(meas) and as the median absolute percentage error. Pure: numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from services.core.errors import InvalidInputError
from services.core.model import PerfParms, ServiceModel
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_parts
from services.perfmodel.servicetime import (
    TOKEN_BUDGET,
    V1_QUEUE_TO_BATCH_RATIO,
    ReplicaModel,
    v1_chunks,
    v1_context_tokens,
)

BOUNDS = ((0.0, 0.0, 0.0, 0.0), (1000.0, 10.0, 1.0, 1000.0))
"""perfParms (alpha, beta, gamma, ttft_overhead) ms bounds of the fit: physical (non-negative), far above any
GPU's."""
SCALE = np.array([1.0, 1e-2, 1e-4, 1.0])
"""Typical sizes of the parameters (ms, ms/token, ms/token read, ms): the optimizer works on x / SCALE."""
ZERO_RATE_PER_MS = 1e-12
"""A synchronous benchmark (one request at a time) is the model at zero load."""
QUEUE_TO_BATCH = V1_QUEUE_TO_BATCH_RATIO
"""Queue of the replayed replica, x N: vLLM queues without a bound, so blocking must not distort the replay."""


@dataclass(frozen=True, slots=True)
class Point:
    """One measured operating point: ``rate_rps`` steady arrivals (0: one request at a time), mean tokens,
    output-length C2, inter-arrival C2, and the measured means (NaN: not measured)."""

    rate_rps: float
    in_tokens: float
    out_tokens: float
    out_c2: float
    arrival_c2: float
    ttft_ms: float
    itl_ms: float


@dataclass(frozen=True, slots=True)
class FitOptions:
    """The replica the points were measured on: model version, max batch N (vLLM max-num-seqs), token budget M."""

    service_model: ServiceModel = ServiceModel.V1
    max_batch: int = 512
    token_budget: int = TOKEN_BUDGET


@dataclass(frozen=True, slots=True)
class ErrorMetrics:
    """Over a set of points: mean |pred - meas| / mean(meas) (the paper's) and the median |pred - meas| / meas."""

    ratio_of_means: float
    median_ape: float


@dataclass(frozen=True, slots=True)
class FitResult:
    """perfParms with the predicted TTFT/ITL per point (ms) and the errors over the points."""

    perf: PerfParms
    ttft_ms: np.ndarray
    itl_ms: np.ndarray
    ttft_error: ErrorMetrics
    itl_error: ErrorMetrics


def _replica(point: Point, perf: PerfParms, options: FitOptions) -> ReplicaModel:
    return ReplicaModel(perf, point.in_tokens, max(point.out_tokens, 1.0), options.max_batch,
                        QUEUE_TO_BATCH * options.max_batch, options.service_model, out_c2=point.out_c2,
                        arrival_c2=point.arrival_c2, token_budget=options.token_budget)


def predict(points: Sequence[Point], perf: PerfParms, options: FitOptions) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, ITL) means in ms predicted for every point at its rate, shapes (len(points),)."""
    if not points:
        return np.zeros(0), np.zeros(0)
    chains = ChainBatch.build([_replica(p, perf, options) for p in points])
    rates = np.array([max(p.rate_rps / 1000.0, ZERO_RATE_PER_MS) for p in points])
    parts = latency_parts(chains, chain_metrics(chains, rates))
    return parts.ttft_ms, parts.itl_ms


def error_metrics(measured: np.ndarray, predicted: np.ndarray) -> ErrorMetrics:
    """Errors over the points where both figures are finite (NaN when there are none)."""
    ok = np.isfinite(measured) & np.isfinite(predicted) & (measured > 0)
    if not ok.any():
        return ErrorMetrics(math.nan, math.nan)
    meas, pred = measured[ok], predicted[ok]
    return ErrorMetrics(float(np.mean(np.abs(pred - meas)) / np.mean(meas)),
                        float(np.median(np.abs(pred - meas) / meas)))


def evaluate(points: Sequence[Point], perf: PerfParms, options: FitOptions) -> FitResult:
    """Predictions and errors of ``perf`` on ``points`` (no fitting: out-of-sample checks)."""
    ttft, itl = predict(points, perf, options)
    measured_ttft = np.array([p.ttft_ms for p in points], dtype=float)
    measured_itl = np.array([p.itl_ms for p in points], dtype=float)
    return FitResult(perf, ttft, itl, error_metrics(measured_ttft, ttft), error_metrics(measured_itl, itl))


def fits_overhead(options: FitOptions) -> bool:
    """Whether the TTFT overhead is a parameter: only model v1 has the term."""
    return options.service_model == ServiceModel.V1


def zero_load_start(points: Sequence[Point], options: FitOptions) -> np.ndarray:
    """(alpha, beta, gamma, overhead) from the zero-load formulas of model v1, linear in them (docs/model.md
    s3.1): TTFT = alpha + beta L + gamma L (c + 1) / 2 + overhead and ITL = alpha + beta + gamma m, each row
    divided by its measurement (relative errors), solved by least squares and clipped into BOUNDS."""
    rows, targets = [], []
    overhead = 1.0 if fits_overhead(options) else 0.0
    for p in points:
        c = float(v1_chunks(p.in_tokens, options.token_budget, 1))
        m = float(v1_context_tokens(p.in_tokens, max(p.out_tokens, 1.0), p.out_c2))
        for coeffs, value in (((1.0, p.in_tokens, p.in_tokens * (c + 1) / 2, overhead), p.ttft_ms),
                              ((1.0, 1.0, m, 0.0), p.itl_ms)):
            if math.isfinite(value) and value > 0:
                rows.append(np.array(coeffs) / value)
                targets.append(1.0)
    if len(rows) < 4:
        return np.array([5.0, 0.01, 1e-5, 0.0])
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    return np.clip(solution, np.array(BOUNDS[0]) + 1e-9, BOUNDS[1])


def fit(points: Sequence[Point], options: FitOptions, start: PerfParms | None = None,
        fit_overhead: bool = True) -> FitResult:
    """The perfParms minimising the squared relative TTFT and ITL errors over ``points`` (bounded by BOUNDS):
    alpha, beta, gamma, and with model v1 the TTFT overhead unless ``fit_overhead`` is false (then it stays
    ``start``'s). ``start``: the first guess (default: zero_load_start).

    Raises InvalidInputError with fewer measured TTFT/ITL figures than parameters.
    """
    measured = np.array([[p.ttft_ms, p.itl_ms] for p in points], dtype=float).reshape(-1, 2)
    usable = np.isfinite(measured) & (measured > 0)
    count = 4 if fits_overhead(options) and fit_overhead else 3
    if usable.sum() < count:
        raise InvalidInputError(f"fit needs at least {count} measured TTFT/ITL figures, got {int(usable.sum())}")
    scale = SCALE[:count]
    overhead = start.ttft_overhead_ms if start is not None else 0.0

    def perf(x: np.ndarray) -> PerfParms:
        values = x * scale
        return PerfParms(*values) if count == 4 else PerfParms(*values, ttft_overhead_ms=overhead)

    def residuals(x: np.ndarray) -> np.ndarray:
        ttft, itl = predict(points, perf(x), options)
        pred = np.column_stack([ttft, itl])
        rel = np.where(usable, (pred - measured) / np.where(usable, measured, 1.0), 0.0)
        return np.nan_to_num(rel[usable], nan=1e6, posinf=1e6)

    lower, upper = np.array(BOUNDS[0][:count]) / scale, np.array(BOUNDS[1][:count]) / scale
    guess = (zero_load_start(points, options) if start is None else
             np.array([start.alpha_ms, start.beta_ms, start.gamma_ms, start.ttft_overhead_ms]))
    first = np.clip(guess[:count] / scale, lower, upper)
    found = least_squares(residuals, first, bounds=(lower, upper), x_scale="jac", method="trf")
    return evaluate(points, perf(found.x), options)
