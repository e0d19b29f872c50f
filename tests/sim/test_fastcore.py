"""The simulator's event skipping gives the engine's own results: every request's token times, counts and the
metrics match plain stepping of the emulator's engine core, with and without KV-cache pressure."""

from __future__ import annotations

import math
import random

import pytest

from emulator.enginecore import EngineCore, EngineParams, Request
from sim.fastcore import SkippingCore
from sim.replica import SimMetrics


def _workload(seed: int, count: int, rate_rps: float, prompt: int, output: int) -> list[tuple[float, int, int]]:
    rng = random.Random(seed)
    t, found = 0.0, []
    for _ in range(count):
        t += rng.expovariate(rate_rps)
        found.append((t, rng.randint(1, prompt), rng.randint(1, output)))
    return found


def _drive(core: EngineCore, workload: list[tuple[float, int, int]], probes: list[float]) -> list[Request]:
    """Feed arrivals in time order, advancing to each arrival and to each probe time (as scrapes do)."""
    events = sorted([(t, "arrival", (p, o)) for t, p, o in workload] + [(t, "probe", None) for t in probes],
                    key=lambda e: e[0])
    requests = []
    for t, kind, sizes in events:
        core.advance_to(t)
        if kind == "arrival":
            requests.append(core.add(Request(*sizes), t))
    core.advance_to(math.inf)
    return requests


PARAMS = {
    "roomy KV cache": EngineParams(22.6, 0.0679, 1.54e-4, max_num_seqs=16, kv_cache_tokens=1 << 20),
    "KV pressure with preemption": EngineParams(10.0, 0.05, 1e-3, max_num_seqs=32, kv_cache_tokens=4096,
                                                block_size=16, max_num_batched_tokens=512),
}


@pytest.mark.parametrize("params", [pytest.param(p, id=k) for k, p in PARAMS.items()])
def test_skipping_gives_the_same_token_times_as_stepping(params: EngineParams) -> None:
    workload = _workload(7, 150, 4.0, 300, 400)
    probes = [15.0 * k + 5.0 for k in range(12)]
    plain_metrics, fast_metrics = SimMetrics(), SimMetrics()
    plain_core = EngineCore(params, plain_metrics)
    plain = _drive(plain_core, workload, probes)
    fast_core = SkippingCore(params, fast_metrics)
    fast = _drive(fast_core, workload, probes)
    assert [(r.first_token_s, r.last_token_s, r.finished_s, r.generated, r.preemptions) for r in fast] == \
        [(r.first_token_s, r.last_token_s, r.finished_s, r.generated, r.preemptions) for r in plain]
    assert all(r.finished for r in fast)
    assert fast_core.iterations == plain_core.iterations
    for name in ("requests_per_s", "generation_tokens_per_s", "itl_count_per_s", "ttft_count_per_s"):
        assert getattr(fast_metrics, name) == getattr(plain_metrics, name), name
    assert fast_metrics.itl_sum_per_s == pytest.approx(plain_metrics.itl_sum_per_s, rel=1e-9)
    # the TTFT and inter-token histograms (vLLM's buckets) see every gap alone, skipped or stepped
    assert fast_metrics.ttft_buckets == plain_metrics.ttft_buckets and sum(fast_metrics.ttft_buckets) == 150
    assert fast_metrics.itl_buckets == plain_metrics.itl_buckets
    assert sum(fast_metrics.itl_buckets) == fast_metrics.itl_count_per_s


def test_skipping_really_skips_steady_decodes() -> None:
    params = PARAMS["roomy KV cache"]
    core = SkippingCore(params, SimMetrics())
    for _ in range(8):
        core.add(Request(100, 500), 0.0)
    core.advance_to(1e-9)
    core.advance_to(5.0)  # a few prefill steps, then one skipped stretch up to 5 s
    running = core.running()
    assert len(running) == 8 and all(r.generated > 50 for r in running)
    assert core.current is not None and core.current.start_s < 5.0 <= core.current.end_s


def test_every_finish_is_reported_at_a_change_time_so_the_router_never_sees_stale_counts() -> None:
    params = PARAMS["roomy KV cache"]
    core = SkippingCore(params)
    for output in (40, 90, 300, 301):
        core.add(Request(50, output), 0.0)
    seen = []
    while (when := core.next_change_s()) is not None:
        finished = [r for it in core.advance_to(when) for r in it.finished]
        assert not finished, "a request finished between two change times"
        if core.next_event_s() == when:
            iteration = core.step(when)
            seen.extend((r.finished_s, when) for r in (iteration.finished if iteration else []))
    assert len(seen) == 4 and all(finished == when for finished, when in seen)
