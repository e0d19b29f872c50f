"""Checks that keep the simulator honest (docs/simulator.md s5):

1. against the real-time emulator: the same engine parameters and the same arrivals played once through the
   emulator's threaded real-time engine (emulator/vllmengine.Engine, sleeping on the wall clock) and once through
   the simulator's replica in event time; the mean TTFT and ITL agree within the real-time engine's timing noise;
2. against real vLLM: every constant-rate point of the GuideLLM sweeps in samples/vllm-sweeps/ (Llama-3.1-8B
   on H100) replayed on one simulated replica with the same rate (GuideLLM's constant rate: evenly spaced
   arrivals) and token-length ranges, with perfParms fitted on those sweeps (the reference joint fit of
   Inferno's model-trainer, in sample); error per point and the median absolute percentage error (as BLIS reports
   it) of mean TTFT and mean ITL.
"""

from __future__ import annotations

import glob
import json
import math
import os
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from emulator.enginecore import EngineParams
from emulator.vllmengine import Engine
from sim.replica import SimReplica

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SWEEPS = os.path.join(REPO, "samples", "vllm-sweeps", "llama-3.1-8b-h100")
"""The real sweeps (Llama-3.1-8B on H100), shipped in samples/vllm-sweeps/."""
H100_FIT = EngineParams(6.58, 1.93e-2, 5.46e-5, max_num_seqs=512, kv_cache_tokens=450_000,
                        max_num_batched_tokens=8192)
"""Llama-3.1-8B on H100: the joint fit over the sweeps' shapes (alpha 6.58 ms, beta 1.93e-2, gamma 5.46e-5; max
batch 512, token budget 8192, as fitted); KV cache 80 GB x 0.9 - 16 GB weights at 128 KiB per token."""


@dataclass(frozen=True, slots=True)
class Means:
    """Mean TTFT and mean per-request ITL (ms) of finished requests, and how many."""

    ttft_ms: float
    itl_ms: float
    requests: int


def _means(rows: Sequence[tuple[float, float, float, int]]) -> Means:
    """(arrival, first token, last token, tokens) rows -> Means (ITL per request: (last - first) / (tokens - 1))."""
    ttft = [first - arrival for arrival, first, _, _ in rows]
    itl = [(last - first) / (n - 1) for _, first, last, n in rows if n > 1]
    return Means(1000.0 * statistics.fmean(ttft), 1000.0 * statistics.fmean(itl), len(rows))


def simulate_arrivals(params: EngineParams, arrivals: Sequence[tuple[float, int, int]]) -> Means:
    """One simulated replica (sim/replica.py) fed (time s, prompt, output) arrivals in event time."""
    replica = SimReplica(params)
    finished = []
    for at_s, prompt, output in arrivals:
        finished += replica.submit(prompt, output, at_s)
    finished += replica.advance(math.inf)
    return _means([(r.arrival_s, r.first_token_s, r.last_token_s, r.generated) for r in finished])


def emulate_arrivals(params: EngineParams, arrivals: Sequence[tuple[float, int, int]]) -> Means:
    """The real-time emulator's engine (a thread sleeping on the monotonic clock) fed the same arrivals at their
    wall-clock times; waits until all finished."""
    engine = Engine(params)
    engine.start()
    try:
        start = time.monotonic()
        requests = []
        for at_s, prompt, output in arrivals:
            delay = start + at_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            requests.append(engine.submit(prompt, output))
        engine.wait_idle(120.0)
    finally:
        engine.stop()
    return _means([(r.arrival_s, r.first_token_s, r.last_token_s, r.generated) for r in requests if r.finished])


def poisson_arrivals(rate_rps: float, count: int, prompt: int, output: int, seed: int) -> list[tuple[float, int, int]]:
    """``count`` Poisson arrivals at ``rate_rps`` with output lengths uniform in [output/2, 3 output/2]."""
    rng = random.Random(seed)
    t, found = 0.0, []
    for _ in range(count):
        t += rng.expovariate(rate_rps)
        found.append((t, prompt, rng.randint(max(output // 2, 1), output * 3 // 2)))
    return found


def emulator_check(params: EngineParams, rate_rps: float, count: int, prompt: int, output: int,
                   seed: int = 1) -> tuple[Means, Means]:
    """(simulated, emulated) means on the same arrivals."""
    arrivals = poisson_arrivals(rate_rps, count, prompt, output, seed)
    return simulate_arrivals(params, arrivals), emulate_arrivals(params, arrivals)


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One constant-rate point: the shape's file, rate, measured and simulated means (ms)."""

    file: str
    rate_rps: float
    ttft_ms: float
    itl_ms: float
    ttft_ms_sim: float
    itl_ms_sim: float

    @property
    def ttft_ape(self) -> float:
        """|sim - measured| / measured for TTFT."""
        return abs(self.ttft_ms_sim - self.ttft_ms) / self.ttft_ms

    @property
    def itl_ape(self) -> float:
        """|sim - measured| / measured for ITL."""
        return abs(self.itl_ms_sim - self.itl_ms) / self.itl_ms


def _range(record: dict, what: str) -> tuple[int, int]:
    values = record[f"Successful {what} token count [min, 0.1, 1, 5, 10, 25, 75, 90, 95, 99, max]"]
    if isinstance(values, str):  # some exports keep the list as its text
        values = json.loads(values)
    return int(values[0]), int(values[-1])


def sweep_points(params: EngineParams = H100_FIT, directory: str = SWEEPS, max_requests: int = 600,
                 seed: int = 1, pattern: str = "sweep-*.json") -> tuple[list[SweepPoint], list[str]]:
    """Every constant-rate record of the sweep files, replayed (at most ``max_requests`` per point); returns the
    points and the records left out (a measured mean that is not a positive number: a defect of the export).

    Raises FileNotFoundError when the directory has no sweep files."""
    files = sorted(glob.glob(os.path.join(directory, pattern)))
    if not files:
        raise FileNotFoundError(f"no GuideLLM sweeps ({pattern}) in {directory}")
    points, excluded = [], []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
        for record in records:
            name = str(record.get("Name", ""))
            if not name.startswith("constant@"):
                continue
            rate = float(name.removeprefix("constant@"))  # the rate GuideLLM sent at
            ttft, itl = float(record["Successful Time to first token ms mean"]), \
                float(record["Successful Inter token latency ms mean"])
            if not (ttft > 0 and itl > 0):
                excluded.append(f"{os.path.basename(path)} {name}: measured TTFT {ttft:.4g} ms, ITL {itl:.4g} ms")
                continue
            count = min(max_requests, int(record["Successful Requests"]))
            (p_low, p_high), (o_low, o_high) = _range(record, "Prompt"), _range(record, "Output")
            rng = random.Random(f"{os.path.basename(path)}/{name}/{seed}")
            arrivals = [(k / rate, rng.randint(p_low, p_high), rng.randint(o_low, o_high)) for k in range(count)]
            means = simulate_arrivals(params, arrivals)
            points.append(SweepPoint(os.path.basename(path), rate, ttft, itl, means.ttft_ms, means.itl_ms))
    return points, excluded


def sweep_report(points: Sequence[SweepPoint], excluded: Sequence[str] = ()) -> str:
    """Per point measured vs simulated, then the median and mean APE of TTFT and ITL."""
    lines = ["| shape | rate req/s | TTFT ms measured / sim | ITL ms measured / sim | TTFT APE | ITL APE |",
             "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.file.removeprefix('sweep-').removesuffix('.json')} | {p.rate_rps:.2f} "
                     f"| {p.ttft_ms:.1f} / {p.ttft_ms_sim:.1f} | {p.itl_ms:.2f} / {p.itl_ms_sim:.2f} "
                     f"| {100 * p.ttft_ape:.1f}% | {100 * p.itl_ape:.1f}% |")
    ttft = [p.ttft_ape for p in points]
    itl = [p.itl_ape for p in points]
    lines += ["", f"{len(points)} points (in sample: the parameters were fitted on these sweeps). Median APE: TTFT "
              f"{100 * statistics.median(ttft):.1f}%, ITL {100 * statistics.median(itl):.1f}%; mean APE: TTFT "
              f"{100 * statistics.fmean(ttft):.1f}%, ITL {100 * statistics.fmean(itl):.1f}%."]
    if excluded:
        lines += ["", "Left out (not a positive measured mean): " + "; ".join(excluded) + "."]
    return "\n".join(lines)


def report(emulator_requests: int = 120) -> str:
    """Both checks as Markdown (the `python -m sim check` output)."""
    params = EngineParams(8.0, 0.02, 1e-4, max_num_seqs=16, kv_cache_tokens=200_000)
    simulated, emulated = emulator_check(params, rate_rps=12.0, count=emulator_requests, prompt=256, output=64)
    lines = ["## Simulator vs the real-time emulator (same engine parameters and arrivals)", "",
             "| run | requests | mean TTFT ms | mean ITL ms |", "|---|---|---|---|",
             f"| simulator (event time) | {simulated.requests} | {simulated.ttft_ms:.2f} | {simulated.itl_ms:.3f} |",
             f"| emulator (real time) | {emulated.requests} | {emulated.ttft_ms:.2f} | {emulated.itl_ms:.3f} |", "",
             "## Simulator vs real vLLM (GuideLLM sweeps, Llama-3.1-8B on H100)", "", sweep_report(*sweep_points())]
    return "\n".join(lines)
