"""The emulated vLLM engine's scheduling core: token-level continuous batching, with no clock and no threads.

One implementation for both users: the real-time emulator (emulator/vllmengine.py drives it from a thread
that sleeps against deadlines on a monotonic clock) and the simulator (sim/ drives it in event time). Every
method takes the current time as an argument (``now_s``, seconds on the caller's clock) and never reads a
clock; the same calls at the same times give the same token times, whichever clock supplies them.

The engine runs iterations back to back while it has work. ``step(now_s)`` ends the iteration in flight
(every request in its batch gets one token stamped at the iteration's ``end_s``; a prefill emits the first
token, as in vLLM) and starts the next at ``now_s``:
1. admits waiting requests first come, first served, while fewer than ``max_num_seqs`` run and the KV cache
   can reserve the request's whole context (prompt + max_tokens; a request that does not fit blocks the ones
   behind it, like vLLM's FCFS scheduler);
2. prefills the newly admitted prompts (L tokens computed, L KV tokens read each) and decodes one token for
   every request already running (1 token computed, its context prompt + generated read);
3. takes ``alpha + beta x computed + gamma x kv_read`` ms (perfParms meaning, docs/model.md s1) times
   ``time_scale``: the new iteration's ``end_s``.
A request therefore sees TTFT = queueing + its prefill iteration and ITL = one iteration per later token; a
request with ``max_tokens`` tokens finishes at the end of its last iteration and frees its KV cache.

Driving it (event time; arrivals at the same instant as an iteration's end join the next iteration)::

    core = EngineCore(params)
    for arrival_s, request in arrivals:
        core.advance_to(arrival_s)      # every iteration ending before the arrival
        core.add(request, arrival_s)
    core.advance_to(math.inf)           # run the rest out

The core is not thread-safe: a threaded driver holds its own lock around every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class EngineObserver(Protocol):
    """What the core reports as it goes (emulator/vllmmetrics.VllmMetrics implements it); times in seconds."""

    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        """Requests running and waiting, KV-cache usage as a fraction (0..1), after every change."""

    def on_scheduled(self, queue_s: float, prompt_tokens: int) -> None:
        """A request was scheduled for the first time, ``queue_s`` after it arrived."""

    def on_first_token(self, ttft_s: float) -> None:
        """A request emitted its first token ``ttft_s`` after it arrived."""

    def on_token(self, itl_s: float) -> None:
        """A request emitted a later token ``itl_s`` after its previous one."""

    def on_finished(self, e2e_s: float, output_tokens: int, prompt_tokens: int = 0) -> None:
        """A request emitted its last token ``e2e_s`` after it arrived."""


@dataclass(frozen=True, slots=True)
class EngineParams:
    """One replica's engine: perfParms (ms), the batch limit, the KV-cache size (tokens), the time scale.

    ``time_scale`` multiplies every iteration (a scaled replica behaves like one with perfParms x time_scale).
    """

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    max_num_seqs: int = 256
    kv_cache_tokens: int = 1 << 20
    time_scale: float = 1.0

    def iteration_s(self, computed: int, kv_read: int) -> float:
        """Seconds of one iteration that computes ``computed`` tokens and reads ``kv_read`` KV tokens."""
        ms = self.alpha_ms + self.beta_ms * computed + self.gamma_ms * kv_read
        return max(ms, 0.0) * self.time_scale / 1000.0


@dataclass(eq=False, slots=True)
class Request:
    """One generation request of ``prompt_tokens`` in and exactly ``max_tokens`` out.

    The core fills in the rest (times in the caller's seconds): ``arrival_s`` (set by ``add``),
    ``scheduled_s`` (first admitted), ``first_token_s``, ``last_token_s``, ``finished_s``, ``generated``
    (tokens emitted so far). Setting ``cancelled`` drops the request at the next iteration boundary;
    ``aborted`` is set when the engine is shut down with the request unfinished.
    """

    prompt_tokens: int
    max_tokens: int
    arrival_s: float = 0.0
    request_id: str = ""
    generated: int = 0
    scheduled_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    finished_s: float | None = None
    cancelled: bool = False
    aborted: bool = False

    @property
    def context_tokens(self) -> int:
        """Tokens this request holds in the KV cache now (prompt + generated)."""
        return self.prompt_tokens + self.generated

    @property
    def reserved_tokens(self) -> int:
        """KV tokens reserved at admission (its full context)."""
        return self.prompt_tokens + self.max_tokens

    @property
    def finished(self) -> bool:
        """Whether all ``max_tokens`` tokens were emitted."""
        return self.finished_s is not None


@dataclass(slots=True)
class Iteration:
    """One engine iteration (one forward pass over the batch), from ``start_s`` to ``end_s``.

    ``batch``: the requests that get a token at ``end_s`` (in batch order); ``prefills``: how many of them
    were admitted by this iteration (the last ones of ``batch``); ``computed_tokens`` and ``kv_read_tokens``:
    the work that set its duration. Filled when the iteration ends (``EngineCore.step``): ``finished``, the
    requests whose last token was emitted at ``end_s``.
    """

    start_s: float
    end_s: float
    batch: list[Request]
    prefills: int
    computed_tokens: int
    kv_read_tokens: int
    finished: list[Request] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Seconds from start to end."""
        return self.end_s - self.start_s


class EngineCore:
    """The clock-free continuous-batching engine of one replica (module docstring).

    ``params``: the replica's EngineParams; ``observer``: optional metrics sink (EngineObserver), told every
    scheduling, token and finish with the caller's times.
    """

    def __init__(self, params: EngineParams, observer: EngineObserver | None = None) -> None:
        self.params = params
        self.observer = observer
        self.iterations = 0
        self._waiting: list[Request] = []
        self._waiting_head = 0
        self._running: list[Request] = []
        self._reserved = 0
        self._current: Iteration | None = None
        self._ready_s: float | None = None

    # --- requests in -------------------------------------------------------------------------------------

    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether a request of this size can ever be served (valid sizes, its context fits the KV cache)."""
        return prompt_tokens >= 0 and max_tokens >= 1 and prompt_tokens + max_tokens <= self.params.kv_cache_tokens

    def add(self, request: Request, now_s: float) -> Request:
        """Queue ``request`` arriving at ``now_s`` (sets ``request.arrival_s``); returns it.

        Raises ValueError when it can never be served (``fits`` is false). ``now_s`` must not be before the
        start of the iteration in flight (the caller's clock only moves forward).
        """
        if not self.fits(request.prompt_tokens, request.max_tokens):
            raise ValueError(f"a request of {request.prompt_tokens} prompt + {request.max_tokens} output tokens "
                             f"does not fit {self.params.kv_cache_tokens} KV-cache tokens")
        request.arrival_s = now_s
        self._waiting.append(request)
        if self._current is None and self._ready_s is None:
            self._ready_s = now_s
        self._report_state()
        return request

    # --- time ----------------------------------------------------------------------------------------------

    @property
    def current(self) -> Iteration | None:
        """The iteration in flight (started, not yet ended), or None."""
        return self._current

    def next_event_s(self) -> float | None:
        """When ``step`` must next be called: the end of the iteration in flight; with none in flight but
        requests queued, the time they became ready (call ``step`` at that time or later); None when idle."""
        if self._current is not None:
            return self._current.end_s
        return self._ready_s if self.has_work else None

    def step(self, now_s: float) -> Iteration | None:
        """End the iteration in flight (its tokens are stamped at its ``end_s``), then start the next one at
        ``now_s`` if there is work (see ``current``). Returns the ended iteration (None if none was in flight).

        Raises ValueError when ``now_s`` is before the end of the iteration in flight.
        """
        ended = None
        if self._current is not None:
            if now_s < self._current.end_s:
                raise ValueError(f"step at {now_s} s before the iteration in flight ends at {self._current.end_s} s")
            ended = self._end(self._current)
            self._current = None
        self._current = self._begin(now_s)
        self._ready_s = None
        self._report_state()
        return ended

    def advance_to(self, t_s: float) -> list[Iteration]:
        """Event skipping: run every step due strictly before ``t_s`` (each at its own event time, iterations
        back to back); the ended iterations in order. ``advance_to(math.inf)`` runs all queued work out."""
        ended = []
        while (event := self.next_event_s()) is not None and event < t_s:
            iteration = self.step(event)
            if iteration is not None:
                ended.append(iteration)
        return ended

    # --- state ---------------------------------------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        """Whether any request waits or runs."""
        return bool(self._running) or self._waiting_head < len(self._waiting)

    @property
    def num_running(self) -> int:
        """Requests in the running batch (admitted, not finished)."""
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Requests queued, not yet admitted."""
        return len(self._waiting) - self._waiting_head

    def running(self) -> list[Request]:
        """The running requests (a copy), oldest admission first."""
        return list(self._running)

    def waiting(self) -> list[Request]:
        """The queued requests (a copy), first in line first."""
        return self._waiting[self._waiting_head:]

    @property
    def kv_usage(self) -> float:
        """KV-cache usage as a fraction (0..1): context tokens held by the running requests over the cache."""
        return sum(r.context_tokens for r in self._running) / self.params.kv_cache_tokens

    def abort_all(self) -> list[Request]:
        """Drop every waiting and running request (marked ``aborted``) and the iteration in flight; returns
        them (running first). The core is idle afterwards."""
        dropped = [*self._running, *self.waiting()]
        for request in dropped:
            request.aborted = True
        self._running, self._waiting, self._waiting_head = [], [], 0
        self._reserved, self._current, self._ready_s = 0, None, None
        self._report_state()
        return dropped

    # --- the iteration -------------------------------------------------------------------------------------

    def _begin(self, start_s: float) -> Iteration | None:
        self._drop_cancelled()
        if not self.has_work:
            return None
        params = self.params
        admitted: list[Request] = []
        while self._waiting_head < len(self._waiting) and len(self._running) < params.max_num_seqs:
            head = self._waiting[self._waiting_head]
            if self._reserved + head.reserved_tokens > params.kv_cache_tokens:
                break
            self._waiting_head += 1
            head.scheduled_s = start_s
            self._reserved += head.reserved_tokens
            self._running.append(head)
            admitted.append(head)
        self._compact_waiting()
        decoding = self._running[:len(self._running) - len(admitted)]
        prompts = sum(r.prompt_tokens for r in admitted)
        computed = prompts + len(decoding)
        kv_read = prompts + sum(r.context_tokens for r in decoding)
        if self.observer is not None:
            for request in admitted:
                self.observer.on_scheduled(max(start_s - request.arrival_s, 0.0), request.prompt_tokens)
        return Iteration(start_s, start_s + params.iteration_s(computed, kv_read), list(self._running),
                         len(admitted), computed, kv_read)

    def _end(self, iteration: Iteration) -> Iteration:
        at_s = iteration.end_s
        observer = self.observer
        for request in iteration.batch:
            if request.cancelled:
                continue
            if request.first_token_s is None:
                request.first_token_s = at_s
                if observer is not None:
                    observer.on_first_token(at_s - request.arrival_s)
            elif observer is not None:
                observer.on_token(at_s - request.last_token_s)
            request.last_token_s = at_s
            request.generated += 1
            if request.generated >= request.max_tokens:
                request.finished_s = at_s
                iteration.finished.append(request)
                if observer is not None:
                    observer.on_finished(at_s - request.arrival_s, request.max_tokens, request.prompt_tokens)
        if iteration.finished:
            done = set(map(id, iteration.finished))
            self._running = [r for r in self._running if id(r) not in done]
            self._reserved -= sum(r.reserved_tokens for r in iteration.finished)
        self.iterations += 1
        return iteration

    def _drop_cancelled(self) -> None:
        if any(r.cancelled for r in self._running):
            for request in [r for r in self._running if r.cancelled]:
                self._reserved -= request.reserved_tokens
            self._running = [r for r in self._running if not r.cancelled]
        if any(r.cancelled for r in self.waiting()):
            self._waiting = [r for r in self.waiting() if not r.cancelled]
            self._waiting_head = 0

    def _compact_waiting(self) -> None:
        if self._waiting_head > 1024 and self._waiting_head * 2 > len(self._waiting):
            del self._waiting[:self._waiting_head]
            self._waiting_head = 0

    def _report_state(self) -> None:
        if self.observer is not None:
            self.observer.set_state(self.num_running, self.num_waiting, self.kv_usage)
