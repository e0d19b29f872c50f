"""Predicted vs simulated percentiles (docs/model.md s3.2): model v1's TTFT and ITL percentiles against the
emulator's engine run in event time (emulator/eventload.py), per-request samples.

One replica (granite_13b on G2 perfParms, 128 prompt / 64 output tokens, max-num-seqs 4), Poisson arrivals at
30%, 60% and 90% of the model's capacity mu(N), fixed and exponential (mean 64) output lengths; 20,000 /
60,000 / 120,000 requests (the first and last 10% by arrival not measured). TTFT percentiles are the
requests'; ITL percentiles those of the token gaps (what vLLM's inter-token histogram counts): every iteration
is a gap for each request it served, so the iterations' durations weighted by the requests they served.
Targets: TTFT P50/P90/P99 within 20% or 25 ms (a P50 of a few tens of ms is a prefill), ITL P50/P90/P99
within 10%.
"""

from __future__ import annotations

import time

import numpy as np

from bench.verdict import verdict
from emulator.enginecore import EngineParams
from emulator.eventload import poisson_arrivals, run_arrivals
from emulator.loadshape import Length, parse_length
from services.core.model import PerfParms, ServiceModel
from services.optimizer.percentiles import predict_percentiles
from services.perfmodel.queueing import ChainBatch
from services.perfmodel.servicetime import V1_QUEUE_TO_BATCH_RATIO, ReplicaModel

GRANITE = PerfParms(17.15, 0.034, 0.0010625)
IN, OUT, BATCH = 128, 64, 4
REQUESTS = {0.3: 20_000, 0.6: 60_000, 0.9: 120_000}
PERCENTILES = (50, 90, 99)
TTFT_TOLERANCE, TTFT_FLOOR_MS, ITL_TOLERANCE = 0.20, 25.0, 0.10


def engine_percentiles(rate_rps: float, count: int, out: Length, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, ITL token-gap) percentiles (PERCENTILES) in ms of ``count`` Poisson requests run through the
    engine in event time, the first and last 10% by arrival not measured (module docstring)."""
    engine = EngineParams(GRANITE.alpha_ms, GRANITE.beta_ms, GRANITE.gamma_ms, max_num_seqs=BATCH)
    requests, spans = run_arrivals(engine, poisson_arrivals(rate_rps, count, Length("fixed", IN), out, seed))
    kept = requests[count // 10: count - count // 10]
    ttft = np.percentile([(r.first_token_s - r.arrival_s) * 1000 for r in kept], PERCENTILES)
    start, end = kept[0].arrival_s, kept[-1].arrival_s
    gaps = np.array([(b - a) * 1000 for a, b, n in spans if start <= a <= end])
    weights = np.array([n for a, _, n in spans if start <= a <= end], dtype=float)
    order = np.argsort(gaps)
    cum = np.cumsum(weights[order]) / weights.sum()
    itl = gaps[order][np.searchsorted(cum, np.array(PERCENTILES) / 100.0)]
    return ttft, itl


def _ok(model: np.ndarray, engine: np.ndarray, tolerance: float, floor_ms: float = 0.0) -> bool:
    return bool(np.all(np.abs(model - engine) <= np.maximum(tolerance * engine, floor_ms)))


def _fmt(values: np.ndarray) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def run() -> None:
    """Print one line per (length distribution, load): predicted vs simulated P50/P90/P99, errors, verdicts."""
    print(f"percentiles: model v1 vs the engine in event time (granite_13b/G2, L {IN}, K {OUT}, N {BATCH}, Poisson; "
          f"P50/P90/P99 in ms; targets: TTFT within {TTFT_TOLERANCE:.0%} or {TTFT_FLOOR_MS:g} ms, ITL token gaps "
          f"within {ITL_TOLERANCE:.0%})")
    for dist, c2, out in (("fixed", 0.0, Length("fixed", OUT)),
                          ("exponential", 1 - 1 / OUT, parse_length({"dist": "exponential", "mean": OUT}))):
        rm = ReplicaModel(GRANITE, IN, OUT, BATCH, V1_QUEUE_TO_BATCH_RATIO * BATCH, ServiceModel.V1, out_c2=c2)
        chains = ChainBatch.build([rm])
        capacity_rps = float(chains.mu_full_per_ms[0]) * 1000
        for load, count in REQUESTS.items():
            started = time.perf_counter()
            rate = load * capacity_rps
            predicted = predict_percentiles(chains, np.array([rate / 1000]), PERCENTILES)
            ttft, itl = engine_percentiles(rate, count, out)
            p_ttft, p_itl = predicted.ttft_ms[0], predicted.itl_ms[0]
            errors = ", ".join(f"{(p / e - 1):+.0%}" for p, e in zip(np.concatenate([p_ttft, p_itl]),
                                                                    np.concatenate([ttft, itl]), strict=True))
            print(f"  {dist:<11} {load:.0%} ({rate:.3f} req/s): TTFT model {_fmt(p_ttft)} engine {_fmt(ttft)}; "
                  f"ITL model {_fmt(p_itl)} engine {_fmt(itl)}; errors {errors}; TTFT target "
                  f"{verdict(_ok(p_ttft, ttft, TTFT_TOLERANCE, TTFT_FLOOR_MS))}, ITL target "
                  f"{verdict(_ok(p_itl, itl, ITL_TOLERANCE))}  [{time.perf_counter() - started:.0f} s]", flush=True)
