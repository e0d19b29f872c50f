"""One emulated replica under seeded Poisson load in event time: the engine core (emulator/enginecore.py) with
no threads, no HTTP and no sleeping, so 20,000 requests take seconds instead of hours.

For checking the queueing model against the engine (bench fidelity rows) and for replaying measured rates
with fitted perfParms. The numbers are the server-side ones vLLM's histograms would give (TTFT from arrival,
ITL per token gap), plus GuideLLM's per-request ITL ((last - first token) / (tokens - 1), averaged over
requests). Arrivals and token lengths come from separate seeded streams, so two runs with the same seed and
rate see the same arrival times whatever the length distributions.

    from emulator.eventload import poisson_load
    result = poisson_load(EngineParams(17.15, 0.034, 0.0010625, max_num_seqs=4), rate_rps=2.0,
                          in_tokens=Length("fixed", 128), out_tokens=parse_length({"dist": "exponential",
                          "mean": 64}), requests=20_000, seed=1)
    result.ttft_ms["mean"], result.itl_ms, result.mean_batch
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from emulator.enginecore import EngineCore, EngineParams, Request
from emulator.loadgen import latency_stats
from emulator.loadshape import Length


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one event-time run measured over its measured requests (module docstring); times in ms.

    ``requests``: requests measured (arrived after the warm-up and before the cool-down); ``offered_rps``:
    their arrival rate; ``ttft_ms``, ``e2e_ms``, ``itl_ms_per_request``: mean/p50/p90/p99; ``itl_ms``: mean
    gap between consecutive tokens over all their tokens (vLLM's histogram mean); ``mean_batch``: requests
    in the engine's iterations averaged over the measured span (idle time counts as 0); ``utilization``: share
    of that span the engine was busy; ``preemptions``: of the whole run; ``in_tokens``, ``out_tokens``:
    mean lengths of the measured requests; ``out_tokens_c2``: the squared coefficient of variation of their
    output lengths (variance / mean^2: 0 fixed, about 1 exponential).
    """

    requests: int
    offered_rps: float
    ttft_ms: dict[str, float]
    itl_ms: float
    itl_ms_per_request: dict[str, float]
    e2e_ms: dict[str, float]
    mean_batch: float
    utilization: float
    preemptions: int
    in_tokens: float
    out_tokens: float
    out_tokens_c2: float


def run_arrivals(params: EngineParams, arrivals: Iterable[tuple[float, int, int]]
                 ) -> tuple[list[Request], list[tuple[float, float, int]]]:
    """Run ``arrivals`` ((arrival s, prompt tokens, output tokens), in time order) through one engine until
    all finished. Returns the requests (in arrival order, their token times filled in) and the iterations as
    (start s, end s, requests scheduled). ValueError when a request can never be served."""
    core = EngineCore(params)
    requests: list[Request] = []
    spans: list[tuple[float, float, int]] = []

    def record(iterations):
        spans.extend((i.start_s, i.end_s, len(i.scheduled)) for i in iterations)

    last = -math.inf
    for arrival_s, prompt_tokens, output_tokens in arrivals:
        if arrival_s < last:
            raise ValueError(f"arrivals out of order: {arrival_s} s after {last} s")
        last = arrival_s
        record(core.advance_to(arrival_s))
        requests.append(core.add(Request(prompt_tokens, output_tokens, request_id=str(len(requests))), arrival_s))
    record(core.advance_to(math.inf))
    return requests, spans


def poisson_arrivals(rate_rps: float, requests: int, in_tokens: Length, out_tokens: Length, seed: int = 0
                     ) -> list[tuple[float, int, int]]:
    """``requests`` Poisson arrivals at ``rate_rps`` from t = 0: (arrival s, prompt tokens, output tokens).
    ValueError on a non-positive rate or count."""
    if not rate_rps > 0 or requests < 1:
        raise ValueError(f"need rate_rps > 0 and requests >= 1, got {rate_rps} and {requests}")
    times, lengths = random.Random(f"{seed}/arrivals"), random.Random(f"{seed}/lengths")
    t, out = 0.0, []
    for _ in range(requests):
        t += times.expovariate(rate_rps)
        out.append((t, in_tokens.sample(lengths), out_tokens.sample(lengths)))
    return out


def summarize(requests: list[Request], spans: list[tuple[float, float, int]], preemptions: int = 0,
              warmup: float = 0.1, cooldown: float = 0.1) -> LoadResult:
    """The LoadResult of a finished run, measuring the requests between the first ``warmup`` and the last
    ``cooldown`` shares (by arrival) so that neither the empty start nor the draining end biases it."""
    if not (0 <= warmup and 0 <= cooldown and warmup + cooldown < 1):
        raise ValueError(f"need warmup, cooldown >= 0 with warmup + cooldown < 1, got {warmup} and {cooldown}")
    first, stop = int(len(requests) * warmup), len(requests) - int(len(requests) * cooldown)
    measured = requests[first:stop]
    if not measured:
        raise ValueError("no request to measure")
    start_s, end_s = measured[0].arrival_s, measured[-1].arrival_s
    span_s = max(end_s - start_s, 1e-12)
    busy = batch = 0.0
    for begin, end, scheduled in spans:
        overlap = min(end, end_s) - max(begin, start_s)
        if overlap > 0:
            busy += overlap
            batch += overlap * scheduled
    gaps = sum(r.last_token_s - r.first_token_s for r in measured)
    later_tokens = sum(r.generated - 1 for r in measured)
    outputs = np.asarray([r.max_tokens for r in measured], dtype=float)
    per_request = [(r.last_token_s - r.first_token_s) / (r.generated - 1) for r in measured if r.generated > 1]
    return LoadResult(
        requests=len(measured), offered_rps=(len(measured) - 1) / span_s if len(measured) > 1 else 0.0,
        ttft_ms=latency_stats([r.first_token_s - r.arrival_s for r in measured], math.nan),
        itl_ms=gaps / later_tokens * 1000.0 if later_tokens else math.nan,
        itl_ms_per_request=latency_stats(per_request, math.nan),
        e2e_ms=latency_stats([r.finished_s - r.arrival_s for r in measured], math.nan),
        mean_batch=batch / span_s, utilization=min(busy / span_s, 1.0), preemptions=preemptions,
        in_tokens=sum(r.prompt_tokens for r in measured) / len(measured),
        out_tokens=float(outputs.mean()), out_tokens_c2=float(outputs.var() / outputs.mean() ** 2))


def poisson_load(params: EngineParams, rate_rps: float, in_tokens: Length, out_tokens: Length,
                 requests: int = 20_000, seed: int = 0, warmup: float = 0.1, cooldown: float = 0.1
                 ) -> LoadResult:
    """One replica with ``params`` under ``requests`` seeded Poisson arrivals at ``rate_rps`` with the given
    length distributions, in event time (module docstring). ValueError on bad arguments or a request that
    can never be served."""
    arrivals = poisson_arrivals(rate_rps, requests, in_tokens, out_tokens, seed)
    finished, spans = run_arrivals(params, arrivals)
    preemptions = sum(r.preemptions for r in finished)
    return summarize(finished, spans, preemptions, warmup, cooldown)
