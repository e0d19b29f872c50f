"""The real-time driver of the emulated vLLM engine: the clock-free core (emulator/enginecore.py) on a thread.

One thread runs the core's iterations back to back while there is work, sleeping against each iteration's
end (an absolute deadline on a monotonic clock) so that sleep overshoot does not accumulate while the engine
stays busy: the next iteration starts at the previous deadline (and the first after an idle spell at the
arrival that woke the engine), unless the thread woke more than ``_LATE_RESET_S`` late, when the schedule
restarts from now. At each deadline the tokens of the ended
iteration are published on their requests' ``events`` queues (the emission time, then None after the last
token), which the HTTP handlers of emulator/vllm.py stream out. The scheduling itself (admission, KV cache,
iteration times) is the core's: see its docstring. All reported times are the clock's seconds.

The clock and the sleep are injected (``clock``, ``sleep``); with a fake clock whose sleep advances it
exactly, the driver produces the same token times as the core driven in event time.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.enginecore import EngineCore, EngineParams, Iteration
from emulator.enginecore import Request as CoreRequest
from emulator.vllmmetrics import VllmMetrics

__all__ = ["Engine", "EngineParams", "Request", "TimingStats"]

_LATE_RESET_S = 0.05
"""When an iteration ends later than this behind its deadline, the schedule restarts from now."""
_IDLE_WAIT_S = 0.2
"""How long the idle engine thread sleeps between checks of its stop flag."""


@dataclass(eq=False, slots=True)
class Request(CoreRequest):
    """A core Request whose tokens arrive on ``events`` as emission times (clock seconds), then None at the
    end (also when the engine stops with the request unfinished: ``aborted`` is then True)."""

    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


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
        self.core = EngineCore(params, self.metrics)
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
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
            for request in self.core.abort_all():
                request.events.put(None)

    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether a request of this size can ever be admitted (its context fits the KV cache)."""
        return self.core.fits(prompt_tokens, max_tokens)

    def submit(self, prompt_tokens: int, max_tokens: int, priority: int = 0) -> Request:
        """Queue a request arriving now (``priority``: vLLM's request field, lower first, used under the
        "priority" scheduling policy); ValueError when it can never fit, RuntimeError once stopped."""
        request = Request(prompt_tokens, max_tokens, request_id=f"cmpl-{next(self._ids)}", priority=priority)
        with self._cond:
            if self._stop:
                raise RuntimeError("the engine is stopped")
            self.core.add(request, self._clock())
            self._cond.notify_all()
        return request

    def cancel(self, request: Request) -> None:
        """Abort a request whose client went away (EngineCore.cancel): no more tokens, its KV blocks freed."""
        with self._cond:
            self.core.cancel(request)
            self._cond.notify_all()

    def in_flight(self) -> int:
        """Requests waiting or running."""
        with self._cond:
            return self.core.num_waiting + self.core.num_running

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing waits or runs, at most ``timeout_s``; True when idle."""
        end = self._clock() + timeout_s
        with self._cond:
            while self.core.has_work:
                left = end - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _IDLE_WAIT_S))
            return True

    def _run(self) -> None:
        start: float | None = None
        while True:
            with self._cond:
                while not self._stop and self.core.next_event_s() is None:
                    start = None
                    self._cond.wait(_IDLE_WAIT_S)
                if self._stop:
                    return
                if start is None:  # idle until now: start at the arrival unless the thread woke too late
                    now, ready = self._clock(), self.core.next_event_s()
                    start = ready if now - ready <= _LATE_RESET_S else now
                ended = self.core.step(start)
                self._publish(ended)
                current = self.core.current
            if current is None:
                start = None
                continue
            self._sleep_until(current.end_s)
            start = self._account(current)

    def _sleep_until(self, deadline: float) -> None:
        for _ in range(1000):
            left = deadline - self._clock()
            if left <= 0:
                return
            self._sleep(left)

    def _account(self, iteration: Iteration) -> float:
        """Record the lateness of ``iteration``'s end; returns the next iteration's start."""
        now = self._clock()
        late = max(now - iteration.end_s, 0.0)
        self.timing.iterations += 1
        self.timing.busy_s += iteration.duration_s
        self.timing.late_s += late
        if late > _LATE_RESET_S:
            self.timing.resets += 1
            return now
        return iteration.end_s

    def _publish(self, iteration: Iteration | None) -> None:
        """Under the lock: put the ended iteration's tokens on the requests' queues; wake waiters."""
        if iteration is None:
            return
        for request in iteration.batch:
            if not request.cancelled:
                request.events.put(iteration.end_s)
        for request in iteration.finished:
            request.events.put(None)
        self._cond.notify_all()
