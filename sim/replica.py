"""One simulated vLLM replica: the emulator's engine core (emulator/enginecore.py) in event time.

The engine is the emulator's own, stepped by the simulator's clock with steady decode stretches skipped
(sim/fastcore.py). Its observer here is SimMetrics: vLLM's counters and gauges as Prometheus would scrape them
(the sums and counts the collector reads) and the histograms it reads buckets of: per-request generation tokens,
TTFT and inter-token latency (vLLM's names and buckets, emulator/vllmmetrics.py), so the collector's
histogram_quantile sees what it sees on a real replica. Finished requests come back with their token times;
nothing here decides how long an iteration takes.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from emulator.enginecore import EngineParams, Request
from emulator.vllmmetrics import ITL_BUCKETS_S, TOKEN_BUCKETS, TTFT_BUCKETS_S
from sim.fastcore import SkippingCore
from sim.prometheus import BUCKET_PREFIX, ITL_BUCKET_PREFIX, TTFT_BUCKET_PREFIX

BUCKET_BOUNDS = (*(float(b) for b in TOKEN_BUCKETS), math.inf)
TTFT_BOUNDS_S = (*TTFT_BUCKETS_S, math.inf)
ITL_BOUNDS_S = (*ITL_BUCKETS_S, math.inf)
"""The ``le`` bounds of vllm:time_to_first_token_seconds and vllm:inter_token_latency_seconds (+Inf last)."""


@dataclass(slots=True)
class SimMetrics:
    """vLLM's metrics of one replica (the engine's observer); field names are the collector's PodRates ones."""

    requests_per_s: float = 0.0
    prompt_tokens_per_s: float = 0.0
    generation_tokens_per_s: float = 0.0
    request_prompt_tokens_sum_per_s: float = 0.0
    request_prompt_tokens_count_per_s: float = 0.0
    request_generation_tokens_sum_per_s: float = 0.0
    request_generation_tokens_count_per_s: float = 0.0
    itl_sum_per_s: float = 0.0
    itl_count_per_s: float = 0.0
    ttft_sum_per_s: float = 0.0
    ttft_count_per_s: float = 0.0
    e2e_sum_per_s: float = 0.0
    e2e_count_per_s: float = 0.0
    requests_running: float = 0.0
    requests_waiting: float = 0.0
    kv_cache_usage: float = 0.0
    preemptions: int = 0
    generation_buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKET_BOUNDS))
    """Finished requests per bucket of output tokens (not cumulative; the sample makes them cumulative)."""
    ttft_buckets: list[int] = field(default_factory=lambda: [0] * len(TTFT_BOUNDS_S))
    itl_buckets: list[int] = field(default_factory=lambda: [0] * len(ITL_BOUNDS_S))
    """First tokens per TTFT bucket and tokens per inter-token-gap bucket (value <= le; not cumulative)."""

    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        """vllm:num_requests_running / waiting, vllm:kv_cache_usage_perc."""
        self.requests_running, self.requests_waiting, self.kv_cache_usage = running, waiting, kv_usage

    def on_scheduled(self, queue_s: float, prompt_tokens: int) -> None:
        """vllm:prompt_tokens_total advances when a prompt is scheduled."""
        self.prompt_tokens_per_s += prompt_tokens

    def on_first_token(self, ttft_s: float) -> None:
        """vllm:time_to_first_token_seconds, and the first generated token."""
        self.ttft_sum_per_s += ttft_s
        self.ttft_count_per_s += 1
        self.generation_tokens_per_s += 1
        self.ttft_buckets[bisect.bisect_left(TTFT_BOUNDS_S, ttft_s)] += 1

    def on_token(self, itl_s: float) -> None:
        """vllm:inter_token_latency_seconds, and one generated token."""
        self.itl_sum_per_s += itl_s
        self.itl_count_per_s += 1
        self.generation_tokens_per_s += 1
        self.itl_buckets[bisect.bisect_left(ITL_BOUNDS_S, itl_s)] += 1

    def on_tokens(self, itl_s: float, count: int) -> None:
        """``count`` tokens emitted ``itl_s`` after each one's previous token (a skipped iteration)."""
        self.itl_sum_per_s += itl_s * count
        self.itl_count_per_s += count
        self.generation_tokens_per_s += count
        self.itl_buckets[bisect.bisect_left(ITL_BOUNDS_S, itl_s)] += count

    def on_finished(self, e2e_s: float, output_tokens: int, prompt_tokens: int = 0) -> None:
        """vllm:request_success_total, e2e latency and the per-request token histograms."""
        self.requests_per_s += 1
        self.e2e_sum_per_s += e2e_s
        self.e2e_count_per_s += 1
        self.request_prompt_tokens_sum_per_s += prompt_tokens
        self.request_prompt_tokens_count_per_s += 1
        self.request_generation_tokens_sum_per_s += output_tokens
        self.request_generation_tokens_count_per_s += 1
        self.generation_buckets[bisect.bisect_left(BUCKET_BOUNDS, output_tokens)] += 1

    def on_preempted(self) -> None:
        """vllm:num_preemptions_total."""
        self.preemptions += 1

    def sample(self) -> dict[str, float]:
        """Every counter and gauge, and the cumulative buckets of the three histograms, as one scrape."""
        found = {name: float(getattr(self, name)) for name in self.__slots__
                 if name not in ("preemptions", "generation_buckets", "ttft_buckets", "itl_buckets")}
        for prefix, bounds, counts in ((BUCKET_PREFIX, BUCKET_BOUNDS, self.generation_buckets),
                                       (TTFT_BUCKET_PREFIX, TTFT_BOUNDS_S, self.ttft_buckets),
                                       (ITL_BUCKET_PREFIX, ITL_BOUNDS_S, self.itl_buckets)):
            cumulative = 0
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                found[f"{prefix}{bound}"] = float(cumulative)
        return found


@dataclass(eq=False, slots=True)
class SimRequest(Request):
    """An engine request carrying the simulator's record of it."""

    tag: object = None


class SimReplica:
    """The engine of one pod under the simulation clock; the simulator is one thread."""

    def __init__(self, params: EngineParams) -> None:
        self.metrics = SimMetrics()
        self.core = SkippingCore(params, self.metrics)

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        """Whether the engine can ever serve a request of this size."""
        return self.core.fits(prompt_tokens, output_tokens)

    @property
    def outstanding(self) -> int:
        """Requests waiting or running (what a least-outstanding-requests router counts)."""
        return self.core.num_running + self.core.num_waiting

    def submit(self, prompt_tokens: int, output_tokens: int, now_s: float, tag: object = None) -> list[SimRequest]:
        """Run the engine up to ``now_s`` (steps strictly before it), then queue the request; returns the requests
        finished on the way. ValueError when the request can never be served."""
        finished = self.advance(now_s)
        self.core.add(SimRequest(prompt_tokens, output_tokens, tag=tag), now_s)
        return finished

    def advance(self, t_s: float, inclusive: bool = False) -> list[SimRequest]:
        """Run every step due before ``t_s`` (at or before, when ``inclusive``); the requests they finished."""
        finished: list[SimRequest] = []
        for iteration in self.core.advance_to(t_s):
            finished.extend(iteration.finished)
        if inclusive and self.core.next_event_s() == t_s:
            iteration = self.core.step(t_s)
            if iteration is not None:
                finished.extend(iteration.finished)
        return finished

    def next_change_s(self) -> float | None:
        """When the simulator must next look at this replica (a request finishes or the batch changes)."""
        return self.core.next_change_s()

    def sample(self) -> dict[str, float]:
        """The replica's metrics as a scrape sees them."""
        return self.metrics.sample()
