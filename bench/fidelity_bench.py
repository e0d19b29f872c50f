"""Model fidelity (docs/model.md s3.1, s11): three tables, each line with its target and verdict.

(a) Model v1 against the emulator's engine (emulator/enginecore.py) run in event time: one replica (granite_13b
    on G2 perfParms, 128 prompt / 64 output tokens, max-num-seqs 4), Poisson arrivals at 30%, 60% and 90% of the
    model's capacity mu(N), fixed and exponential (geometric, mean 64) output lengths, 20,000 requests at 30%,
    100,000 at 60% and 200,000 at 90% (the first 10% dropped as warm-up; the 95% interval of the engine's mean
    TTFT is printed: near saturation the mean converges slowly). Targets: mean TTFT within 10%, ITL within 5%.
(b) `fit` on the real Llama-3.1-8B sweeps (H100, GuideLLM, samples/vllm-sweeps): in sample (all shapes
    jointly) and out of sample (each shape evaluated with parameters fitted on the other shapes), next to the
    reference parameters (Inferno model-trainer, model v0.7) on the same points. Target: out-of-sample error
    below the reference's published 14.6% (TTFT) / 6.0% (ITL).
(c) The engine replaying the sweeps' rates (evenly spaced arrivals as GuideLLM's constant rate, lengths
    uniform in [0.5, 1.5] x the shape's as GuideLLM generated them, max-num-seqs 512, 8192-token budget) with
    the in-sample fitted parameters (plus the fitted TTFT overhead a client sees), against the measurements.
    Reported, no target (the issue sets none): it shows what the emulator does with fitted parameters.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from bench.verdict import verdict, within
from emulator.enginecore import EngineCore, EngineParams, Request
from services.core.model import PerfParms, ServiceModel
from services.optimizer.fit_cli import as_point, steady_points
from services.perfmodel.fit import FitOptions, Point, error_metrics, evaluate, fit
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import V1_QUEUE_TO_BATCH_RATIO, ReplicaModel

GRANITE = PerfParms(17.15, 0.034, 0.0010625)
IN, OUT, BATCH = 128, 64, 4
REQUESTS = {0.3: 20_000, 0.6: 100_000, 0.9: 200_000}
"""Requests per point: at 20,000 the mean TTFT varies by +-12% between seeds at 60% and +-15% at 90%."""
REFERENCE = PerfParms(6.58, 1.93e-2, 5.46e-5)
"""Inferno model-trainer's joint fit of Llama-3.1-8B over 16 shapes (model v0.7): 14.6% TTFT, 6.0% ITL."""
REFERENCE_ERRORS = (0.146, 0.060)
REPLAY_LIFETIMES = 4.0
"""A replayed point runs this many request lifetimes (measured TTFT + K ITL; at least 30 s, at most the sweep's
request count); requests arriving in the first lifetime are warm-up, not counted."""


SWEEPS = Path(__file__).resolve().parents[1] / "samples" / "vllm-sweeps" / "llama-3.1-8b-h100"
"""The real Llama-3.1-8B sweeps shipped in samples/vllm-sweeps/."""


def engine_run(params: EngineParams, arrivals: np.ndarray, prompts: np.ndarray, outputs: np.ndarray
               ) -> list[Request]:
    """The requests, run through the engine in event time (arrivals in s)."""
    core = EngineCore(params)
    requests = []
    for t, prompt, out in zip(arrivals, prompts, outputs, strict=True):
        core.advance_to(float(t))
        requests.append(core.add(Request(int(prompt), int(out)), float(t)))
    core.advance_to(math.inf)
    return requests


def ttft_ci_ms(requests: list[Request], batches: int = 10) -> float:
    """Half-width of the 95% confidence interval of the mean TTFT, ms, from ``batches`` consecutive batch means."""
    ttft = np.array([r.first_token_s - r.arrival_s for r in requests]) * 1000
    means = np.array([part.mean() for part in np.array_split(ttft, batches)])
    return float(2.262 * means.std(ddof=1) / math.sqrt(batches))  # Student t, 9 degrees of freedom


def engine_means(params: EngineParams, arrivals: np.ndarray, prompts: np.ndarray, outputs: np.ndarray,
                 warmup: int = 0) -> tuple[float, float]:
    """(mean TTFT ms, token-mean ITL ms) of the requests after ``warmup`` run through the engine in event time."""
    return means(engine_run(params, arrivals, prompts, outputs)[warmup:])


def means(kept: list[Request]) -> tuple[float, float]:
    """(mean TTFT ms, token-mean ITL ms) of ``kept``."""
    ttft = float(np.mean([r.first_token_s - r.arrival_s for r in kept])) * 1000
    decode = sum(r.finished_s - r.first_token_s for r in kept if r.max_tokens > 1)
    tokens = sum(r.max_tokens - 1 for r in kept if r.max_tokens > 1)
    return ttft, decode / tokens * 1000 if tokens else math.nan


def table_a() -> None:
    print(f"fidelity (a): model v1 vs the emulator's engine in event time (granite_13b/G2 perfParms, L {IN}, K {OUT}, "
          f"N {BATCH}, Poisson arrivals; 20,000 / 100,000 / 200,000 requests at 30 / 60 / 90%, the first 10% dropped; "
          "+- the 95% interval of the engine's mean TTFT from 10 batch means)")
    rng = np.random.default_rng(17)
    for dist, c2 in (("fixed", 0.0), ("exponential", 1 - 1 / OUT)):
        rm = ReplicaModel(GRANITE, IN, OUT, BATCH, V1_QUEUE_TO_BATCH_RATIO * BATCH, ServiceModel.V1, out_c2=c2)
        capacity_rps = analyze_point(rm, 1e-12).max_rate_per_ms / 0.999 * 1000
        for load, count in REQUESTS.items():
            rate = load * capacity_rps
            started = time.perf_counter()
            arrivals = np.cumsum(rng.exponential(1 / rate, count))
            outputs = (np.full(count, OUT) if dist == "fixed" else rng.geometric(1 / OUT, count))
            engine = EngineParams(GRANITE.alpha_ms, GRANITE.beta_ms, GRANITE.gamma_ms, max_num_seqs=BATCH)
            kept = engine_run(engine, arrivals, np.full(count, IN), outputs)[count // 10:]
            (ttft, itl), ci = means(kept), ttft_ci_ms(kept)
            point = analyze_point(rm, rate / 1000)
            inferno = analyze_point(ReplicaModel(GRANITE, IN, OUT, BATCH, 10 * BATCH), rate / 1000)
            e_ttft, e_itl = point.ttft_ms / ttft - 1, point.itl_ms / itl - 1
            print(f"  {dist:<11} {load:.0%} of capacity ({rate:.3f} req/s): TTFT model {point.ttft_ms:7.1f} ms, "
                  f"engine {ttft:7.1f} +- {ci:.1f} ms ({e_ttft:+.1%}) {within(e_ttft, 0.10)}; ITL model "
                  f"{point.itl_ms:6.2f} ms, engine {itl:6.2f} ms ({e_itl:+.1%}) {within(e_itl, 0.05)}; "
                  f"v0.3 for comparison: TTFT {inferno.ttft_ms:.1f} ms ({inferno.ttft_ms / ttft - 1:+.0%}), ITL "
                  f"{inferno.itl_ms:.2f} ms ({inferno.itl_ms / itl - 1:+.0%})  [{time.perf_counter() - started:.0f} s]",
                  flush=True)


def _points(files: list[Path]) -> tuple[list, list[Point]]:
    benches = steady_points([str(f) for f in files])
    return benches, [as_point(b) for b in benches]


def _errors(points: list[Point], ttft: np.ndarray, itl: np.ndarray) -> tuple[float, float]:
    return (error_metrics(np.array([p.ttft_ms for p in points]), ttft).ratio_of_means,
            error_metrics(np.array([p.itl_ms for p in points]), itl).ratio_of_means)


def table_b(files: list[Path]) -> PerfParms:
    """Prints table (b); returns the in-sample fitted parameters."""
    options = FitOptions(ServiceModel.V1)
    _, points = _points(files)
    inside = fit(points, options)
    reference = evaluate(points, REFERENCE, FitOptions(ServiceModel.V07))
    print(f"fidelity (b): fit on the Llama-3.1-8B sweeps ({len(files)} shapes, {len(points)} steady-rate points), "
          f"model v1; errors mean |pred - meas| / mean meas (median in brackets)")
    p = inside.perf
    print(f"  in-sample: alpha {p.alpha_ms:.3f} ms, beta {p.beta_ms:.5f} ms, gamma {p.gamma_ms:.3e} ms, TTFT overhead "
          f"{p.ttft_overhead_ms:.2f} ms: TTFT {inside.ttft_error.ratio_of_means:.1%} "
          f"({inside.ttft_error.median_ape:.1%}), ITL {inside.itl_error.ratio_of_means:.1%} "
          f"({inside.itl_error.median_ape:.1%})")
    print(f"  reference parameters (v0.7, 6.58 / 0.0193 / 5.46e-5) on the same points: TTFT "
          f"{reference.ttft_error.ratio_of_means:.1%} ({reference.ttft_error.median_ape:.1%}), ITL "
          f"{reference.itl_error.ratio_of_means:.1%} ({reference.itl_error.median_ape:.1%}); published, in sample "
          f"over 16 shapes: {REFERENCE_ERRORS[0]:.1%} / {REFERENCE_ERRORS[1]:.1%}")
    held_ttft, held_itl, all_points = [], [], []
    for left_out in files:
        _, train = _points([f for f in files if f != left_out])
        _, test = _points([left_out])
        out = evaluate(test, fit(train, options).perf, options)
        held_ttft.append(out.ttft_ms)
        held_itl.append(out.itl_ms)
        all_points += test
        print(f"  left out {left_out.stem.removeprefix('sweep-'):<12}: TTFT {out.ttft_error.ratio_of_means:6.1%}, "
              f"ITL {out.itl_error.ratio_of_means:6.1%}", flush=True)
    ttft_out, itl_out = _errors(all_points, np.concatenate(held_ttft), np.concatenate(held_itl))
    ok = ttft_out < REFERENCE_ERRORS[0] and itl_out < REFERENCE_ERRORS[1]
    print(f"  leave-one-shape-out (out of sample), all held-out points: TTFT {ttft_out:.1%}, ITL {itl_out:.1%}; "
          f"target < {REFERENCE_ERRORS[0]:.1%} / {REFERENCE_ERRORS[1]:.1%} (the reference, in sample): {verdict(ok)}")
    return inside.perf


def table_c(files: list[Path], perf: PerfParms) -> None:
    print(f"fidelity (c): the engine replaying the sweeps' constant rates with the in-sample parameters "
          f"(alpha {perf.alpha_ms:.3f}, beta {perf.beta_ms:.5f}, gamma {perf.gamma_ms:.3e}, "
          f"+ {perf.ttft_overhead_ms:.2f} ms client TTFT overhead) vs the measurements; each point run for "
          f"{REPLAY_LIFETIMES:g} request lifetimes (at least 30 s), the first one dropped as warm-up")
    params = EngineParams(perf.alpha_ms, perf.beta_ms, perf.gamma_ms, max_num_seqs=512, kv_cache_tokens=1 << 22)
    rng = np.random.default_rng(5)
    meas_ttft, meas_itl, sim_ttft, sim_itl = [], [], [], []
    for file in files:
        benches, _ = _points([file])
        shape_meas, shape_sim = [], []
        for bench in benches:
            if bench.strategy == "synchronous" or not (math.isfinite(bench.itl_ms)):
                continue
            ttft_ms = bench.ttft_ms if math.isfinite(bench.ttft_ms) else 0.0
            lifetime_s = (ttft_ms + bench.out_tokens * bench.itl_ms) / 1000
            count = int(min(bench.requests, max(bench.rate_rps * max(REPLAY_LIFETIMES * lifetime_s, 30.0), 50)))
            arrivals = np.arange(count) / bench.rate_rps
            prompts = np.maximum(np.rint(rng.uniform(0.5, 1.5, count) * bench.in_tokens), 1)
            outputs = np.maximum(np.rint(rng.uniform(0.5, 1.5, count) * bench.out_tokens), 1)
            warmup = int(np.searchsorted(arrivals, min(lifetime_s, arrivals[-1] / 2)))
            ttft, itl = engine_means(params, arrivals, prompts, outputs, warmup=warmup)
            ttft += perf.ttft_overhead_ms
            shape_meas.append((bench.ttft_ms, bench.itl_ms))
            shape_sim.append((ttft, itl))
        meas, sim = np.array(shape_meas), np.array(shape_sim)
        e_ttft = error_metrics(meas[:, 0], sim[:, 0]).ratio_of_means
        e_itl = error_metrics(meas[:, 1], sim[:, 1]).ratio_of_means
        print(f"  {file.stem.removeprefix('sweep-'):<12} {len(meas)} rates: TTFT {e_ttft:6.1%}, ITL {e_itl:6.1%} "
              f"(engine vs measured, mean |diff| / mean meas)", flush=True)
        meas_ttft.append(meas[:, 0])
        meas_itl.append(meas[:, 1])
        sim_ttft.append(sim[:, 0])
        sim_itl.append(sim[:, 1])
    total_ttft = error_metrics(np.concatenate(meas_ttft), np.concatenate(sim_ttft)).ratio_of_means
    total_itl = error_metrics(np.concatenate(meas_itl), np.concatenate(sim_itl)).ratio_of_means
    print(f"  all shapes: TTFT {total_ttft:.1%}, ITL {total_itl:.1%} (reported; no target set)")


def run(parts: str = "abc") -> None:
    """Print the fidelity tables named in ``parts`` (a, b, c)."""
    if "a" in parts:
        table_a()
    files = sorted(SWEEPS.glob("sweep-*.json"))
    perf = table_b(files) if "b" in parts or "c" in parts else None
    if "c" in parts and perf is not None:
        table_c(files, perf)
