"""One simulated vLLM replica: the emulator's engine (emulator/vllmengine.py) stepped in event time.

The engine is the emulator's own; this module only supplies its clock (the simulation time) and steps it one
iteration at a time: ``submit`` queues a request at the current time, ``next_event_s`` is the end of the
iteration in progress, ``step`` ends it and starts the next (the engine admits, prefills and decodes exactly as
in the real-time emulator). Finished requests are handed back with their token times; the scrape sample is
read from the engine's vLLM metrics. Nothing here decides how long an iteration takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.vllmengine import Engine, EngineParams, Request
from emulator.vllmmetrics import VllmMetrics


class _Discard:
    """Stands in for a request's token queue: the simulator reads token times from the request itself."""

    __slots__ = ()

    def put(self, _item: object) -> None:
        """Drop the token event."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished request: prompt and output tokens, when it reached the replica, first and last token (s)."""

    prompt_tokens: int
    output_tokens: int
    submitted_s: float
    first_token_s: float
    last_token_s: float
    tag: object = None


class _SimClock:
    __slots__ = ("now_s",)

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class SimReplica:
    """The engine of one pod under the simulation clock; not thread-safe (the simulator is one thread)."""

    def __init__(self, params: EngineParams, model_name: str = "sim") -> None:
        self._clock = _SimClock()
        self.metrics = VllmMetrics(model_name)
        self.engine = Engine(params, self.metrics, clock=self._clock, sleep=_no_sleep)
        self._iteration: tuple[list[Request], int, float, float] | None = None
        self._tags: dict[int, object] = {}

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        """Whether the engine can ever admit a request of this size."""
        return self.engine.fits(prompt_tokens, output_tokens)

    def submit(self, prompt_tokens: int, output_tokens: int, now_s: float, tag: object = None) -> None:
        """Queue a request at ``now_s``; an idle engine starts an iteration at once. ValueError if it never fits."""
        self._clock.now_s = now_s
        request = self.engine.submit(prompt_tokens, output_tokens)
        request.events = _Discard()
        self._tags[id(request)] = tag
        if self._iteration is None:
            self._start(now_s)

    @property
    def next_event_s(self) -> float | None:
        """When the iteration in progress ends; None when idle."""
        return self._iteration[2] if self._iteration is not None else None

    @property
    def outstanding(self) -> int:
        """Requests waiting or running."""
        return len(self.engine._waiting) + len(self.engine._running)

    def step(self) -> list[Finished]:
        """End the iteration in progress at its end time, start the next one; returns the requests it finished."""
        if self._iteration is None:
            return []
        batch, prefills, end_s, duration = self._iteration
        self._clock.now_s = end_s
        self.engine._finish_iteration(batch, prefills, end_s, duration)
        done = []
        for request in batch:
            if request.generated >= request.max_tokens:
                done.append(Finished(request.prompt_tokens, request.generated, request.arrival_s,
                                     request.first_token_s, request.last_token_s, self._tags.pop(id(request), None)))
        self._iteration = None
        self._start(end_s)
        return done

    def _start(self, now_s: float) -> None:
        engine = self.engine
        if not engine._waiting and not engine._running:
            return
        batch, prefills, duration = engine._plan(now_s)
        if batch:
            self._iteration = (batch, prefills, now_s + duration, duration)

    def sample(self) -> dict[str, float]:
        """The replica's metrics as a scrape sees them, keyed by the collector's PodRates field names."""
        mt = self.metrics
        return {
            "requests_per_s": mt.success, "prompt_tokens_per_s": mt.prompt_tokens,
            "generation_tokens_per_s": mt.generation_tokens,
            "request_prompt_tokens_sum_per_s": mt.request_prompt.total,
            "request_prompt_tokens_count_per_s": mt.request_prompt.count,
            "request_generation_tokens_sum_per_s": mt.request_generation.total,
            "request_generation_tokens_count_per_s": mt.request_generation.count,
            "itl_sum_per_s": mt.itl.total, "itl_count_per_s": mt.itl.count,
            "ttft_sum_per_s": mt.ttft.total, "ttft_count_per_s": mt.ttft.count,
            "e2e_sum_per_s": mt.e2e.total, "e2e_count_per_s": mt.e2e.count,
            "requests_running": mt.running, "requests_waiting": mt.waiting, "kv_cache_usage": mt.kv_usage,
        }


def _no_sleep(_seconds: float) -> None:
    raise AssertionError("a simulated replica never sleeps")
