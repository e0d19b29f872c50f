"""The emulated vLLM engine's scheduling core: token-level continuous batching, with no clock and no threads.

One implementation for both users: the real-time emulator (emulator/vllmengine.py drives it from a thread
that sleeps against deadlines on a monotonic clock) and the simulator (sim/ drives it in event time). Every
method takes the current time as an argument (``now_s``, seconds on the caller's clock) and never reads a
clock; the same calls at the same times give the same token times, whichever clock supplies them.

The engine runs iterations back to back while it has work. ``step(now_s)`` ends the iteration in flight and
starts the next at ``now_s``. The schedule of an iteration follows vLLM V1's scheduler (FCFS policy):
1. a token budget of ``max_num_batched_tokens`` per iteration; the running requests are served first, in
   admission order: a decoding request needs 1 token, one still prefilling (chunked) the rest of its prompt,
   capped by the budget left;
2. KV cache in blocks of ``block_size`` tokens (``kv_cache_tokens // block_size`` blocks), allocated on
   demand as a request's computed context grows; when a running request needs a block and none is free, the
   most recently admitted running request is preempted (under the priority policy the least important,
   latest arrived one, which may be one scheduled earlier in the iteration: its tokens go back to the budget):
   its blocks are freed, its computed tokens forgotten, and it goes back to the front of the waiting queue
   (preemption by recomputation, vLLM's default); if that is the request itself, it waits too;
3. then, unless a request was preempted in this iteration, waiting requests are admitted first come, first
   served while fewer than ``max_num_seqs`` run, budget is left and the blocks for their tokens are free
   (the first that does not fit stops admission); a (re)admitted request computes its prompt plus, after a
   preemption, the tokens it had generated; with ``enable_chunked_prefill`` a prompt longer than the budget
   left is split over several iterations, without it the whole prompt must fit the budget left;
4. the iteration takes ``alpha + beta x computed + gamma x kv_read`` ms (perfParms meaning, docs/model.md s1)
   times ``time_scale``, where computed is the tokens scheduled and kv_read, per request, its context up to
   the end of its scheduled tokens (a prefill of L: L; a decode: prompt + generated);
5. at its end every request whose computed context caught up with its tokens emits one token (a prefill's
   last chunk emits the first token, as in vLLM; a recomputation emits the next one); a request with
   ``max_tokens`` tokens finishes and frees its blocks.
With ``scheduling_policy="priority"`` (vLLM's ``--scheduling-policy priority``) the waiting queue is ordered by
the requests' ``priority`` (lower first; arrival order within one priority), so step 3 admits the most important
waiting request first; admission stays non-preemptive (a running request keeps its place whatever arrives), and
when the KV cache is full the victim of step 2 is the least important running request, the latest arrived among
equals, as in vLLM V1's scheduler (a more important running request is never evicted while a less important one
runs; with the emulator's default KV cache preemption is rare).
Without preemption and budget limits a request sees TTFT = queueing + its prefill iteration and ITL = one
iteration per later token. Requests are never lost: a preempted request is recomputed and finishes.

Driving it (event time; arrivals at the same instant as an iteration's end join the next iteration)::

    core = EngineCore(params)
    for arrival_s, request in arrivals:
        core.advance_to(arrival_s)      # every iteration ending before the arrival
        core.add(request, arrival_s)
    core.advance_to(math.inf)           # run the rest out

The core is not thread-safe: a threaded driver holds its own lock around every call.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Protocol

_CANCELLED = attrgetter("cancelled")

DEFAULT_BLOCK_SIZE = 16
"""vLLM's default KV-cache block size on CUDA, tokens."""
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
"""vLLM's default token budget per iteration for the OpenAI server with chunked prefill (V1)."""


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

    def on_preempted(self) -> None:
        """A running request was preempted (its KV blocks freed; it will be recomputed)."""


SCHEDULING_POLICIES = ("fcfs", "priority")
"""vLLM's --scheduling-policy values."""


@dataclass(frozen=True, slots=True)
class EngineParams:
    """One replica's engine (vLLM's names where it has them).

    ``alpha_ms``, ``beta_ms``, ``gamma_ms``: perfParms (ms per iteration, per computed token, per KV token
    read); ``max_num_seqs``: the batch limit; ``kv_cache_tokens``: the KV cache's size in tokens (it holds
    ``kv_cache_tokens // block_size`` blocks); ``block_size``: tokens per KV block; ``max_num_batched_tokens``:
    the token budget per iteration (None: 8192 with chunked prefill, else the KV cache's size);
    ``enable_chunked_prefill``: whether a prompt may be split over iterations; ``max_model_len``: the longest
    context (prompt + max_tokens) a request may ask for (None: what the KV cache holds); ``scheduling_policy``:
    vLLM's ``--scheduling-policy``, "fcfs" (arrival order) or "priority" (the waiting queue ordered by the
    requests' ``priority``, lower first, arrival order within one; non-preemptive: a running request is never
    evicted for a more important one, and when the KV cache is full the least important is preempted first);
    ``time_scale`` multiplies every
    iteration (a scaled replica behaves like one with perfParms x time_scale). ValueError naming the field on
    a negative or non-finite perfParm, a non-positive time scale or limit, a token budget under
    ``max_num_seqs`` (vLLM refuses it too), or a KV cache smaller than a block.
    """

    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    max_num_seqs: int = 256
    kv_cache_tokens: int = 1 << 20
    time_scale: float = 1.0
    block_size: int = DEFAULT_BLOCK_SIZE
    max_num_batched_tokens: int | None = None
    enable_chunked_prefill: bool = True
    max_model_len: int | None = None
    scheduling_policy: str = "fcfs"

    def __post_init__(self) -> None:
        if self.scheduling_policy not in SCHEDULING_POLICIES:
            raise ValueError(f"scheduling_policy must be one of {', '.join(SCHEDULING_POLICIES)}, got "
                             f"{self.scheduling_policy!r}")
        for name in ("alpha_ms", "beta_ms", "gamma_ms", "time_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "time_scale" and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'time_scale' else '>= 0'}, "
                                 f"got {value}")
        for name in ("max_num_seqs", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_num_batched_tokens", "max_model_len"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.token_budget < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.token_budget}) must be >= max_num_seqs "
                             f"({self.max_num_seqs}), as vLLM requires (else decodes past the budget starve)")
        if self.kv_cache_tokens < self.block_size:
            raise ValueError(f"kv_cache_tokens ({self.kv_cache_tokens}) must hold at least one block of "
                             f"{self.block_size} tokens")

    @property
    def num_blocks(self) -> int:
        """KV-cache blocks (vLLM's num_gpu_blocks)."""
        return self.kv_cache_tokens // self.block_size

    @property
    def context_limit(self) -> int:
        """The longest context a request may have: ``max_model_len``, at most what the KV cache holds."""
        cache = self.num_blocks * self.block_size
        return cache if self.max_model_len is None else min(self.max_model_len, cache)

    @property
    def token_budget(self) -> int:
        """Tokens one iteration may compute (``max_num_batched_tokens`` or its default)."""
        if self.max_num_batched_tokens is not None:
            return self.max_num_batched_tokens
        return DEFAULT_MAX_NUM_BATCHED_TOKENS if self.enable_chunked_prefill else self.kv_cache_tokens

    def iteration_s(self, computed: int, kv_read: int) -> float:
        """Seconds of one iteration that computes ``computed`` tokens and reads ``kv_read`` KV tokens."""
        ms = self.alpha_ms + self.beta_ms * computed + self.gamma_ms * kv_read
        return max(ms, 0.0) * self.time_scale / 1000.0


@dataclass(eq=False, slots=True)
class Request:
    """One generation request of ``prompt_tokens`` in and exactly ``max_tokens`` out.

    The core fills in the rest (times in the caller's seconds): ``arrival_s`` (set by ``add``),
    ``scheduled_s`` (first admitted), ``first_token_s``, ``last_token_s``, ``finished_s``, ``generated``
    (tokens emitted so far), ``computed`` (tokens whose KV is computed now), ``blocks`` (KV blocks held now),
    ``preemptions`` (times it was preempted and recomputed). ``EngineCore.cancel`` drops a request at once
    (setting ``cancelled`` directly drops it at the next iteration boundary, or when it reaches the head of
    the queue); ``aborted`` is set when the engine is shut down with the request unfinished. ``priority``:
    vLLM's request field (lower is served first; only with the "priority" scheduling policy).
    """

    prompt_tokens: int
    max_tokens: int
    arrival_s: float = 0.0
    request_id: str = ""
    priority: int = 0
    generated: int = 0
    scheduled_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    finished_s: float | None = None
    computed: int = 0
    blocks: int = 0
    preemptions: int = 0
    cancelled: bool = False
    aborted: bool = False

    @property
    def context_tokens(self) -> int:
        """Tokens of its context so far (prompt + generated)."""
        return self.prompt_tokens + self.generated

    @property
    def finished(self) -> bool:
        """Whether all ``max_tokens`` tokens were emitted."""
        return self.finished_s is not None


@dataclass(slots=True)
class Iteration:
    """One engine iteration (one forward pass), from ``start_s`` to ``end_s``.

    ``scheduled``: (request, tokens computed for it) in schedule order; ``batch``: the requests that emit a
    token at ``end_s`` (their computed context catches up; a partial prefill chunk emits none);
    ``prefills``: how many requests this iteration admitted from the waiting queue (new or recomputed);
    ``preempted``: the requests preempted while scheduling it; ``computed_tokens`` and ``kv_read_tokens``:
    the work that set its duration. Filled when the iteration ends (``EngineCore.step``): ``finished``, the
    requests whose last token was emitted at ``end_s``.
    """

    start_s: float
    end_s: float
    scheduled: list[tuple[Request, int]]
    batch: list[Request]
    prefills: int
    computed_tokens: int
    kv_read_tokens: int
    preempted: list[Request] = field(default_factory=list)
    finished: list[Request] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Seconds from start to end."""
        return self.end_s - self.start_s


class EngineCore:
    """The clock-free continuous-batching engine of one replica (module docstring).

    ``params``: the replica's EngineParams; ``observer``: optional metrics sink (EngineObserver), told every
    scheduling, token, finish and preemption with the caller's times.
    """

    def __init__(self, params: EngineParams, observer: EngineObserver | None = None) -> None:
        self.params = params
        self.observer = observer
        self.iterations = 0
        self.preemptions = 0
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._free_blocks = params.num_blocks
        self._current: Iteration | None = None
        self._ready_s: float | None = None

    # --- requests in -------------------------------------------------------------------------------------

    def refusal(self, prompt_tokens: int, max_tokens: int) -> str | None:
        """Why a request of this size can never be served (None when it can): negative or zero sizes, a
        context (prompt + max_tokens) over ``max_model_len`` (vLLM's message) or larger than the KV cache's
        blocks, or, without chunked prefill, larger than the token budget."""
        params = self.params
        if prompt_tokens < 0 or max_tokens < 1:
            return f"prompt_tokens must be >= 0 and max_tokens >= 1, got {prompt_tokens} and {max_tokens}"
        context = prompt_tokens + max_tokens
        if params.max_model_len is not None and context > params.max_model_len:
            return (f"This model's maximum context length is {params.max_model_len} tokens. However, you "
                    f"requested {context} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                    f"completion). Please reduce the length of the messages or completion.")
        if -(-context // params.block_size) > params.num_blocks:
            return (f"a request of {prompt_tokens} prompt + {max_tokens} output tokens does not fit "
                    f"the KV cache ({params.num_blocks} blocks of {params.block_size} = "
                    f"{params.num_blocks * params.block_size} tokens)")
        if not params.enable_chunked_prefill and context > params.token_budget:
            return (f"a request of {prompt_tokens} prompt + {max_tokens} output tokens does not fit "
                    f"max_num_batched_tokens {params.token_budget} without chunked prefill")
        return None

    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether a request of this size can ever be served (``refusal`` is None)."""
        return self.refusal(prompt_tokens, max_tokens) is None

    def add(self, request: Request, now_s: float) -> Request:
        """Queue ``request`` arriving at ``now_s`` (sets ``request.arrival_s``); returns it.

        Raises ValueError (the ``refusal`` text) when it can never be served. ``now_s`` must not be before
        the start of the iteration in flight (the caller's clock only moves forward).
        """
        reason = self.refusal(request.prompt_tokens, request.max_tokens)
        if reason is not None:
            raise ValueError(reason)
        request.arrival_s = now_s
        self._enqueue(request, front=False)
        if self._current is None and self._ready_s is None:
            self._ready_s = now_s
        self._report_state()
        return request

    def cancel(self, request: Request) -> None:
        """Abort ``request`` (the client went away): it leaves the queue or the batch now, its blocks are
        freed, and it emits no more tokens (also none at the end of the iteration in flight)."""
        request.cancelled = True
        if request in self._running:
            self._running = [r for r in self._running if r is not request]
            self._free_blocks += request.blocks
            request.blocks = 0
        elif request in self._waiting:
            self._waiting.remove(request)
        self._report_state()

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
        return bool(self._running) or bool(self._waiting)

    @property
    def num_running(self) -> int:
        """Requests in the running batch (admitted, not finished, not preempted)."""
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Requests queued: not yet admitted, or preempted and waiting to be recomputed."""
        return len(self._waiting)

    def running(self) -> list[Request]:
        """The running requests (a copy), oldest admission first."""
        return list(self._running)

    def waiting(self) -> list[Request]:
        """The queued requests (a copy), first in line first."""
        return list(self._waiting)

    @property
    def used_blocks(self) -> int:
        """KV blocks held by running requests."""
        return self.params.num_blocks - self._free_blocks

    @property
    def kv_usage(self) -> float:
        """KV-cache usage as a fraction (0..1): blocks held over blocks (vLLM's kv_cache_usage_perc)."""
        return self.used_blocks / self.params.num_blocks

    def abort_all(self) -> list[Request]:
        """Drop every waiting and running request (marked ``aborted``) and the iteration in flight; returns
        them (running first). The core is idle afterwards."""
        dropped = [*self._running, *self._waiting]
        for request in dropped:
            request.aborted = True
            request.blocks = 0
        self._running, self._waiting = [], deque()
        self._free_blocks, self._current, self._ready_s = self.params.num_blocks, None, None
        self._report_state()
        return dropped

    # --- the iteration -------------------------------------------------------------------------------------

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.params.block_size)

    def _enqueue(self, request: Request, front: bool) -> None:
        """Into the waiting queue: FCFS at the back (a preempted request at the front); under the priority
        policy before the first waiting request of a larger priority value (a preempted one also before those
        of its own value: it arrived earlier), so the queue stays ordered by (priority, arrival)."""
        waiting = self._waiting
        if self.params.scheduling_policy != "priority":
            waiting.appendleft(request) if front else waiting.append(request)
            return
        key = request.priority
        if not waiting or (waiting[-1].priority <= key and not front):
            waiting.append(request)
            return
        for index, other in enumerate(waiting):
            if other.priority > key or (front and other.priority == key):
                waiting.insert(index, request)
                return
        waiting.append(request)

    def _victim(self) -> Request:
        """The running request to preempt when the KV cache is full: the most recently admitted (FCFS), or under
        the priority policy the least important (largest ``priority``), latest arrived (vLLM V1's scheduler:
        max(running, key=(priority, arrival_time)))."""
        if self.params.scheduling_policy == "priority":
            return max(self._running, key=lambda r: (r.priority, r.arrival_s))
        return self._running[-1]

    def _preempt(self, victim: Request) -> Request:
        """Preempt ``victim``: take it out of the running batch, free its blocks, forget its computed tokens,
        put it at the front of the waiting queue (under priority: first among its own priority)."""
        self._running.remove(victim)
        self._free_blocks += victim.blocks
        victim.blocks, victim.computed = 0, 0
        victim.preemptions += 1
        self.preemptions += 1
        self._enqueue(victim, front=True)
        if self.observer is not None:
            self.observer.on_preempted()
        return victim

    def _begin(self, start_s: float) -> Iteration | None:
        self._drop_cancelled()
        if not self.has_work:
            return None
        params = self.params
        size = params.block_size
        budget = params.token_budget
        running = self._running
        scheduled: list[tuple[Request, int]] = []
        batch: list[Request] = []
        preempted: list[Request] = []
        kv_read = 0
        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            context = request.prompt_tokens + request.generated
            tokens = min(context - request.computed, budget)
            end = request.computed + tokens
            if end > request.blocks * size:
                need = -(-end // size) - request.blocks
                while need > self._free_blocks:
                    victim = self._victim()
                    position = running.index(victim)
                    if position < index:  # scheduled earlier in this iteration: give its tokens back
                        slot = next(i for i, (r, _) in enumerate(scheduled) if r is victim)
                        given = scheduled.pop(slot)[1]
                        budget += given
                        kv_read -= victim.computed + given
                        if victim in batch:
                            batch.remove(victim)
                        index -= 1
                    preempted.append(self._preempt(victim))
                    if victim is request:  # the request itself: it waits too
                        break
                if preempted and preempted[-1] is request:
                    break
                request.blocks += need
                self._free_blocks -= need
            scheduled.append((request, tokens))
            kv_read += end
            if end >= context:
                batch.append(request)
            budget -= tokens
            index += 1
        admitted = 0
        waiting = self._waiting
        while not preempted and waiting and budget > 0 and len(running) < params.max_num_seqs:
            request = waiting[0]
            if request.cancelled:
                waiting.popleft()
                continue
            context = request.prompt_tokens + request.generated
            tokens = context - request.computed
            if tokens > budget and not params.enable_chunked_prefill:
                break
            tokens = min(tokens, budget)
            end = request.computed + tokens
            need = -(-end // size) - request.blocks
            if need > self._free_blocks:
                break
            waiting.popleft()
            request.blocks += need
            self._free_blocks -= need
            running.append(request)
            scheduled.append((request, tokens))
            kv_read += end
            if end >= context:
                batch.append(request)
            budget -= tokens
            admitted += 1
            if request.scheduled_s is None:
                request.scheduled_s = start_s
                if self.observer is not None:
                    self.observer.on_scheduled(max(start_s - request.arrival_s, 0.0), request.prompt_tokens)
        if not scheduled:
            if not self.has_work:  # only cancelled requests were left
                return None
            raise RuntimeError("the engine scheduled nothing with requests queued (an unservable request was "
                               "admitted)")
        computed = params.token_budget - budget
        return Iteration(start_s, start_s + params.iteration_s(computed, kv_read), scheduled, batch, admitted,
                         computed, kv_read, preempted)

    def _end(self, iteration: Iteration) -> Iteration:
        at_s = iteration.end_s
        observer = self.observer
        for request, tokens in iteration.scheduled:
            if request.cancelled:
                continue
            computed = request.computed + tokens
            request.computed = computed
            if computed < request.prompt_tokens + request.generated:
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
            for request in iteration.finished:
                self._free_blocks += request.blocks
                request.blocks = 0
            self._running = [r for r in self._running if r.finished_s is None]
        self.iterations += 1
        return iteration

    def _drop_cancelled(self) -> None:
        """Drop the cancelled running requests (freeing their blocks); cancelled waiting ones are dropped as
        they reach the head of the queue."""
        if any(map(_CANCELLED, self._running)):
            for request in self._running:
                if request.cancelled:
                    self._free_blocks += request.blocks
                    request.blocks = 0
            self._running = [r for r in self._running if not r.cancelled]
        while self._waiting and self._waiting[0].cancelled:
            self._waiting.popleft()

    def _report_state(self) -> None:
        if self.observer is not None:
            self.observer.set_state(self.num_running, self.num_waiting, self.kv_usage)
