"""An open-loop load generator: Poisson arrivals per target, sent as streaming OpenAI completions.

Each Target has a Schedule (emulator/loadshape.py), prompt and output Length distributions, optional SLOs and its
endpoints: a list of base URLs or a callable returning the current list (endpoints may change while the load runs;
requests go round-robin over them like a Service; a pool router's callable returns the one replica it picks), and
optionally the ``priority`` its requests carry (vLLM's field, for per-class traffic). Arrivals follow a non-
homogeneous Poisson process (thinning at the schedule's peak rate), each sent on its own thread, so a slow server
never slows the arrivals. Requests ask for exactly ``max_tokens`` tokens (``min_tokens`` and ``ignore_eos`` too, as
a real vLLM would need) and carry the prompt length in the ``prompt_tokens`` extension field. TTFT, ITL (a request's
mean gap between tokens) and end-to-end latency are measured on the client. Everything is bounded: the schedule's
length, ``max_requests``, ``max_in_flight`` (requests beyond it count as failed) and a drain timeout after the last
arrival.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from emulator.loadshape import Length, Schedule

Endpoints = Sequence[str] | Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Target:
    """One server's load: where to send, how much, how long, and the SLOs to score against (ms, 0 = none)."""

    name: str
    endpoints: Endpoints
    schedule: Schedule
    in_tokens: Length = field(default_factory=lambda: Length("fixed", 128))
    out_tokens: Length = field(default_factory=lambda: Length("fixed", 64))
    model: str | None = None
    slo_ttft_ms: float = 0.0
    slo_itl_ms: float = 0.0
    priority: int | None = None
    """vLLM's request ``priority`` sent with every request (lower first); None sends none."""


@dataclass(slots=True)
class Sample:
    """One request's client-side measurements (seconds); ``ok`` False when it failed. ``sent_at_s`` is the
    send time in seconds since the load started (set by the LoadGenerator; 0 for a lone send_completion);
    ``error`` says why a request failed."""

    ok: bool
    ttft_s: float = 0.0
    itl_s: float = 0.0
    e2e_s: float = 0.0
    tokens: int = 0
    sent_at_s: float = 0.0
    error: str = ""


def latency_stats(values: list[float], empty: float = 0.0) -> dict[str, float]:
    """Mean, p50, p90, p99 (linear-interpolated percentiles) in ms of latencies ``values`` in seconds; every
    figure ``empty`` when there are none."""
    if not values:
        return {"mean": empty, "p50": empty, "p90": empty, "p99": empty}
    array = np.asarray(values) * 1000.0
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {"mean": float(array.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def report(target: Target, samples: list[Sample], sent: int, elapsed_s: float) -> dict:
    """The summary of one target's requests: counts, achieved rate, latency stats (ms), share within SLOs,
    and the three most frequent reasons of failure with their counts."""
    done = [s for s in samples if s.ok]
    within = [s for s in done if (not target.slo_ttft_ms or s.ttft_s * 1000 <= target.slo_ttft_ms)
              and (not target.slo_itl_ms or s.itl_s * 1000 <= target.slo_itl_ms)]
    return {"target": target.name, "sent": sent, "completed": len(done), "failed": len(samples) - len(done),
            "elapsed_s": elapsed_s, "offered_rps": sent / elapsed_s if elapsed_s > 0 else 0.0,
            "achieved_rps": len(done) / elapsed_s if elapsed_s > 0 else 0.0,
            "ttft_ms": latency_stats([s.ttft_s for s in done]),
            "itl_ms": latency_stats([s.itl_s for s in done if s.tokens > 1]),
            "e2e_ms": latency_stats([s.e2e_s for s in done]),
            "within_slo": len(within) / len(samples) if samples else 0.0,
            "errors": dict(Counter(s.error or "unknown" for s in samples if not s.ok).most_common(3))}


def send_completion(url: str, body: dict, timeout_s: float = 120.0, clock: Callable[[], float] = time.monotonic
                    ) -> Sample:
    """POST one streaming completion to ``url`` (a base URL) and time its tokens."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    start = clock()
    times: list[float] = []
    try:
        conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            return Sample(False, error=f"HTTP {response.status}")
        for line in iter(response.readline, b""):
            if line.startswith(b"data: {"):
                if b'"error"' in line[:20]:
                    return Sample(False, error="error event in the stream")
                times.append(clock())
    except (OSError, http.client.HTTPException) as err:
        return Sample(False, error=type(err).__name__)
    finally:
        conn.close()
    if len(times) < body.get("max_tokens", 1):
        return Sample(False, error=f"stream ended after {len(times)} of {body.get('max_tokens', 1)} tokens")
    itl = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.0
    return Sample(True, times[0] - start, itl, times[-1] - start, len(times))


class LoadGenerator:
    """Runs targets' schedules concurrently; run() blocks, start()/stop()/wait() run it in the background."""

    def __init__(self, targets: Sequence[Target], *, seed: int = 0, max_requests: int = 100_000,
                 max_in_flight: int = 512, drain_s: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.targets = list(targets)
        self.max_requests, self.max_in_flight, self.drain_s = max_requests, max_in_flight, drain_s
        self._rng = random.Random(seed)
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._sent = {t.name: 0 for t in self.targets}
        self._samples: dict[str, list[Sample]] = {t.name: [] for t in self.targets}
        self._workers: list[threading.Thread] = []
        self._dispatchers: list[threading.Thread] = []
        self._started = 0.0
        self._ended: float | None = None

    def start(self) -> LoadGenerator:
        """Start one dispatcher thread per target."""
        self._started = self._clock()
        for index, target in enumerate(self.targets):
            rng = random.Random(self._rng.random() + index)
            thread = threading.Thread(target=self._dispatch, args=(target, rng), name=f"loadgen-{target.name}",
                                      daemon=True)
            thread.start()
            self._dispatchers.append(thread)
        return self

    def stop(self) -> None:
        """Stop sending new requests (in-flight ones still finish within wait())."""
        self._stop.set()

    def wait(self) -> dict[str, dict]:
        """Wait for the schedules to end and the in-flight requests to finish (bounded); the reports by target."""
        longest = max((t.schedule.duration_s for t in self.targets), default=0.0)
        for thread in self._dispatchers:
            thread.join(timeout=max(longest - (self._clock() - self._started), 0.0) + 5)
        self._ended = self._ended or self._clock()
        end = self._clock() + self.drain_s
        with self._lock:
            workers = list(self._workers)
        for thread in workers:
            thread.join(timeout=max(end - self._clock(), 0.0))
        return self.reports()

    def run(self) -> dict[str, dict]:
        """start() then wait()."""
        return self.start().wait()

    def reports(self) -> dict[str, dict]:
        """The reports so far (by target name)."""
        elapsed = (self._ended or self._clock()) - self._started
        with self._lock:
            return {t.name: report(t, list(self._samples[t.name]), self._sent[t.name], elapsed) for t in self.targets}

    @property
    def elapsed_s(self) -> float:
        """Seconds since start() (0 before it)."""
        return self._clock() - self._started if self._started else 0.0

    def window_reports(self, from_s: float, to_s: float) -> dict[str, dict]:
        """Reports over the requests sent in [from_s, to_s) seconds after the start, by target name; requests
        still in flight are not counted, so ask once they have had time to finish. ``offered_rps`` and
        ``achieved_rps`` are per second of the window."""
        with self._lock:
            chosen = {t.name: [s for s in self._samples[t.name] if from_s <= s.sent_at_s < to_s]
                      for t in self.targets}
        span = max(to_s - from_s, 1e-9)
        return {t.name: report(t, chosen[t.name], len(chosen[t.name]), span) for t in self.targets}

    def _dispatch(self, target: Target, rng: random.Random) -> None:
        schedule, peak = target.schedule, target.schedule.peak_rps
        counter = itertools.count()
        t = 0.0
        while peak > 0 and not self._stop.is_set():
            t += rng.expovariate(peak)
            if t >= schedule.duration_s:
                break
            if rng.random() * peak > schedule.rate_at(t):
                continue
            delay = self._started + t - self._clock()
            if delay > 0 and self._stop.wait(delay):
                break
            if not self._claim(target):
                break
            self._launch(target, next(counter), rng)

    def _claim(self, target: Target) -> bool:
        with self._lock:
            if sum(self._sent.values()) >= self.max_requests:
                return False
            self._sent[target.name] += 1
            return True

    def _launch(self, target: Target, index: int, rng: random.Random) -> None:
        urls = list(target.endpoints() if callable(target.endpoints) else target.endpoints)
        sent_at = self._clock() - self._started
        if not urls or not self._slots.acquire(blocking=False):
            error = "no ready endpoint" if not urls else f"over {self.max_in_flight} requests in flight"
            self._record(target, Sample(False, sent_at_s=sent_at, error=error))
            return
        out = target.out_tokens.sample(rng)
        body = {"prompt": "emulated load", "prompt_tokens": target.in_tokens.sample(rng), "max_tokens": out,
                "min_tokens": out, "ignore_eos": True, **({"model": target.model} if target.model else {}),
                **({"priority": target.priority} if target.priority is not None else {})}
        thread = threading.Thread(target=self._send, args=(target, urls[index % len(urls)], body, sent_at), daemon=True,
                                  name=f"loadgen-{target.name}-{index}")
        with self._lock:
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(thread)
        thread.start()

    def _send(self, target: Target, url: str, body: dict, sent_at_s: float) -> None:
        try:
            sample = send_completion(url, body, timeout_s=self.drain_s, clock=self._clock)
            sample.sent_at_s = sent_at_s
            self._record(target, sample)
        finally:
            self._slots.release()

    def _record(self, target: Target, sample: Sample) -> None:
        with self._lock:
            self._samples[target.name].append(sample)
