"""The emulated vLLM engine: token-level continuous batching with perfParms iteration times.

One thread runs engine iterations back to back while there is work. Each iteration
1. admits waiting requests first come, first served, while fewer than ``max_num_seqs`` run and the KV cache
   can reserve the request's whole context (prompt + max_tokens; no preemption, so a request that would not
   fit blocks the ones behind it, like vLLM's FCFS scheduler);
2. prefills the newly admitted prompts (L tokens computed, L KV tokens read each) and decodes one token for
   every request already running (1 token computed, its current context prompt + generated read);
3. takes ``alpha + beta x computed + gamma x kv_read`` ms (perfParms meaning, docs/model.md s1) times
   ``time_scale``, spent sleeping against absolute deadlines on a monotonic clock so that sleep overshoot
   does not accumulate while the engine stays busy;
4. ends by emitting one token for every request in the batch (a prefill emits the first token, as in vLLM);
   a request with ``max_tokens`` tokens finishes and frees its KV reservation.
A request therefore sees TTFT = queueing + its prefill iteration and ITL = one iteration per later token.
``time_scale`` multiplies every iteration (a scaled replica behaves like one with perfParms x time_scale);
all reported times are real seconds.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.vllmmetrics import VllmMetrics

_LATE_RESET_S = 0.05
"""When an iteration ends later than this behind its deadline, the schedule restarts from now."""
_IDLE_WAIT_S = 0.2
"""How long the idle engine thread sleeps between checks of its stop flag."""


@dataclass(frozen=True, slots=True)
class EngineParams:
    """perfParms (ms), the batch limit, the KV-cache size (tokens) and the time scale of one replica."""

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    max_num_seqs: int = 256
    kv_cache_tokens: int = 1 << 20
    time_scale: float = 1.0

    def iteration_s(self, computed: int, kv_read: int) -> float:
        """Real seconds of one iteration that computes ``computed`` tokens and reads ``kv_read`` KV tokens."""
        ms = self.alpha_ms + self.beta_ms * computed + self.gamma_ms * kv_read
        return max(ms, 0.0) * self.time_scale / 1000.0


@dataclass(eq=False, slots=True)
class Request:
    """One generation request; tokens arrive on ``events`` as emission times (monotonic), then None."""

    prompt_tokens: int
    max_tokens: int
    arrival_s: float
    request_id: str = ""
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    generated: int = 0
    scheduled_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    cancelled: bool = False
    aborted: bool = False

    @property
    def context_tokens(self) -> int:
        """Tokens this request holds in the KV cache now."""
        return self.prompt_tokens + self.generated

    @property
    def reserved_tokens(self) -> int:
        """KV tokens reserved at admission (its full context)."""
        return self.prompt_tokens + self.max_tokens


@dataclass(slots=True)
class TimingStats:
    """How far iteration ends landed behind their deadlines (the emulator's own timing error)."""

    iterations: int = 0
    busy_s: float = 0.0
    late_s: float = 0.0
    resets: int = 0

    @property
    def relative_error(self) -> float:
        """Total lateness over total scheduled iteration time."""
        return self.late_s / self.busy_s if self.busy_s > 0 else 0.0


class Engine:
    """A continuous-batching engine on its own thread; submit() requests, read tokens from their queues."""

    def __init__(self, params: EngineParams, metrics: VllmMetrics | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.params = params
        self.metrics = metrics or VllmMetrics("emulated")
        self.timing = TimingStats()
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._reserved = 0
        self._stop = False
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the engine thread."""
        self._thread = threading.Thread(target=self._run, name="vllm-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine thread; requests still queued or running are aborted (their queues get None)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cond:
            for request in [*self._running, *self._waiting]:
                request.aborted = True
                request.events.put(None)
            self._running.clear()
            self._waiting.clear()
            self._reserved = 0
        self._update_gauges()

    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether a request of this size can ever be admitted (its context fits the KV cache)."""
        return prompt_tokens + max_tokens <= self.params.kv_cache_tokens

    def submit(self, prompt_tokens: int, max_tokens: int) -> Request:
        """Queue a request; ValueError when it can never fit the KV cache."""
        if not self.fits(prompt_tokens, max_tokens) or max_tokens < 1 or prompt_tokens < 0:
            raise ValueError(f"a request of {prompt_tokens} prompt + {max_tokens} output tokens does not fit "
                             f"{self.params.kv_cache_tokens} KV-cache tokens")
        request = Request(prompt_tokens, max_tokens, self._clock(), f"cmpl-{next(self._ids)}")
        with self._cond:
            if self._stop:
                raise RuntimeError("the engine is stopped")
            self._waiting.append(request)
            self._cond.notify_all()
        self._update_gauges()
        return request

    def in_flight(self) -> int:
        """Requests waiting or running."""
        with self._cond:
            return len(self._waiting) + len(self._running)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing waits or runs, at most ``timeout_s``; True when idle."""
        end = self._clock() + timeout_s
        with self._cond:
            while self._waiting or self._running:
                left = end - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _IDLE_WAIT_S))
            return True

    def _run(self) -> None:
        start = None
        while True:
            with self._cond:
                while not self._stop and not self._waiting and not self._running:
                    start = None
                    self._cond.wait(_IDLE_WAIT_S)
                if self._stop:
                    return
                now = self._clock()
                start = now if start is None else start
                batch, prefills, duration = self._plan(start)
            deadline = start + duration
            self._sleep_until(deadline)
            start = self._finish_iteration(batch, prefills, deadline, duration)

    def _plan(self, start: float) -> tuple[list[Request], int, float]:
        """Under the lock: drop cancelled, admit FCFS, return (batch, number of prefills, duration)."""
        self._drop_cancelled()
        params = self.params
        prefills = 0
        while self._waiting and len(self._running) < params.max_num_seqs:
            head = self._waiting[0]
            if self._reserved + head.reserved_tokens > params.kv_cache_tokens:
                break
            self._waiting.popleft()
            head.scheduled_s = start
            self._reserved += head.reserved_tokens
            self._running.append(head)
            prefills += 1
        batch = list(self._running)
        decoding, admitted = batch[:len(batch) - prefills], batch[len(batch) - prefills:]
        computed = sum(r.prompt_tokens for r in admitted) + len(decoding)
        kv_read = sum(r.prompt_tokens for r in admitted) + sum(r.context_tokens for r in decoding)
        for request in admitted:
            self.metrics.on_scheduled(max(request.scheduled_s - request.arrival_s, 0.0), request.prompt_tokens)
        return batch, prefills, params.iteration_s(computed, kv_read)

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._running if r.cancelled]:
            self._running.remove(request)
            self._reserved -= request.reserved_tokens
        self._waiting = deque(r for r in self._waiting if not r.cancelled)

    def _sleep_until(self, deadline: float) -> None:
        for _ in range(1000):
            left = deadline - self._clock()
            if left <= 0:
                return
            self._sleep(left)

    def _finish_iteration(self, batch: list[Request], prefills: int, deadline: float, duration: float) -> float:
        """Emit one token per request in the batch; returns the next iteration's start."""
        now = self._clock()
        late = max(now - deadline, 0.0)
        self.timing.iterations += 1
        self.timing.busy_s += duration
        self.timing.late_s += late
        with self._cond:
            for request in batch:
                self._emit(request, deadline)
            self._cond.notify_all()
        self._update_gauges()
        if late > _LATE_RESET_S:
            self.timing.resets += 1
            return now
        return deadline

    def _emit(self, request: Request, at_s: float) -> None:
        """Under the lock: one token for ``request`` at ``at_s``; finishes it after its last token."""
        if request.first_token_s is None:
            request.first_token_s = at_s
            self.metrics.on_first_token(at_s - request.arrival_s)
        else:
            self.metrics.on_token(at_s - request.last_token_s)
        request.last_token_s = at_s
        request.generated += 1
        request.events.put(at_s)
        if request.generated >= request.max_tokens:
            self._running.remove(request)
            self._reserved -= request.reserved_tokens
            self.metrics.on_finished(at_s - request.arrival_s, request.max_tokens, request.prompt_tokens)
            request.events.put(None)

    def _update_gauges(self) -> None:
        with self._cond:
            held = sum(r.context_tokens for r in self._running)
            running, waiting = len(self._running), len(self._waiting)
        self.metrics.set_state(running, waiting, held / self.params.kv_cache_tokens)
