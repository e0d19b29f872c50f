"""Event skipping for the emulator's engine core: steady decode stretches done in one go, token times unchanged.

The engine (emulator/enginecore.py) is stepped one iteration at a time; with 64 sequences of 2,000 tokens that
is ~15 million token emissions per simulated hour, too slow for Python. Most of those iterations are alike: once
the batch is decode-only (nothing is prefilling, every running request computes one token, and nothing waits that
could be admitted: the head of the queue was already refused when the iteration in flight was planned, by the
batch limit, the token budget or the KV blocks, none of which loosens before a request finishes) and until a
request finishes or the KV cache runs out of blocks, iteration i of the stretch computes n tokens and
reads kv0 + i x n, so its length is the core's own ``params.iteration_s(n, kv0 + i n)``. SkippingCore runs such
a stretch in O(iterations) scalar steps plus O(n) per request: the same end times (the same floating-point
sums as stepping), the same token counts, last-token times and KV blocks, and the same metrics (the ITLs are
reported per iteration with a count, ``on_tokens``, when the observer has it, and the stretch's first gaps one
by one, as the latency histograms need them). Anything else (admission,
prefill chunks, preemption, the iteration that finishes a request) is left to the core's ``step``.
tests/sim/test_fastcore.py checks skipping against plain stepping request by request.
"""

from __future__ import annotations

import bisect

from emulator.enginecore import EngineCore, Iteration


class SkippingCore(EngineCore):
    """An EngineCore whose ``advance_to`` skips steady decode stretches (module docstring)."""

    _stretch_cache: tuple[Iteration, list[float], bool] | None = None

    _steady_cache: tuple[Iteration | None, object, Iteration | None] = (None, None, None)

    def _steady(self) -> Iteration | None:
        """The iteration in flight if it starts a steady decode stretch, else None (remembered per iteration in
        flight and head of the queue, the only things that change it between steps)."""
        current = self._current
        head = self._waiting[0] if self._waiting else None
        cached_current, cached_head, answer = self._steady_cache
        if cached_current is current and cached_head is head and current is not None:
            return answer
        answer = self._check_steady(current, head)
        self._steady_cache = (current, head, answer)
        return answer

    def _check_steady(self, current: Iteration | None, head: object) -> Iteration | None:
        if current is None or current.preempted or current.prefills:
            return None
        if head is not None and head.arrival_s >= current.start_s:
            return None  # the head of the queue came after this iteration was planned: it may be admitted next
        if len(current.scheduled) != len(self._running) or current.computed_tokens != len(current.scheduled):
            return None
        for request, tokens in current.scheduled:
            if tokens != 1 or request.computed + 1 != request.context_tokens or request.cancelled:
                return None
        return current

    def _stretch(self, current: Iteration, until_s: float) -> tuple[list[float], bool]:
        """(end times, cut by blocks): the ends t_1.. of the stretch's iterations 0, 1, ... that may be done in
        one go: each ends before ``until_s``, none finishes a request, and from iteration 1 on none needs more
        KV blocks than exist (the total is tracked by residue class of the contexts, O(1) per iteration)."""
        params = self.params
        n = len(current.scheduled)
        requests = [r for r, _ in current.scheduled]
        last = min(r.max_tokens - r.generated - 1 for r in requests)  # the iteration index that finishes one
        size = params.block_size
        crossing = [0] * size  # requests whose (computed + 1) falls in each residue class
        needed = 0
        for request in requests:
            crossing[(request.computed + 1) % size] += 1
            needed += self._blocks_for(request.computed + 1)
        ends: list[float] = []
        t, kv_read = current.end_s, current.kv_read_tokens
        # params.iteration_s inlined, the same operations in the same order (so the same floats as stepping)
        alpha, beta, gamma, scale, total = params.alpha_ms, params.beta_ms, params.gamma_ms, params.time_scale, \
            params.num_blocks
        i = 0
        while i < last and t < until_s:
            if i >= 1:
                needed += crossing[(-(i - 1)) % size]
                if needed > total:
                    return ends, True
            ends.append(t)
            i += 1
            ms = alpha + beta * n + gamma * (kv_read + i * n)
            t = t + max(ms, 0.0) * scale / 1000.0
        return ends, False

    def _cached_stretch(self, current: Iteration) -> tuple[list[float], bool]:
        """The whole stretch of ``current`` (no time bound), computed once per iteration in flight."""
        cached = self._stretch_cache
        if cached is not None and cached[0] is current:
            return cached[1], cached[2]
        ends, cut = self._stretch(current, float("inf"))
        self._stretch_cache = (current, ends, cut)
        return ends, cut

    def skip(self, until_s: float) -> int:
        """Do the steady stretch in flight up to ``until_s`` (module docstring); the iterations done (0: none,
        the caller steps instead). Afterwards the next iteration of the stretch is in flight, as after ``step``."""
        current = self._steady()
        if current is None:
            return 0
        ends, _ = self._cached_stretch(current)
        if ends and ends[-1] >= until_s:
            ends = ends[:bisect.bisect_left(ends, until_s)]
        if len(ends) < 2:
            return 0
        done = len(ends)
        observer = self.observer
        bulk = getattr(observer, "on_tokens", None)
        end, first_end = ends[-1], ends[0]
        for request, _ in current.scheduled:
            if observer is not None:
                observer.on_token(first_end - request.last_token_s)
            request.computed += done
            request.generated += done
            request.last_token_s = end
            blocks = max(request.blocks, self._blocks_for(request.computed))
            self._free_blocks -= blocks - request.blocks
            request.blocks = blocks
        if observer is not None:
            n = len(current.scheduled)
            for before, after in zip(ends, ends[1:], strict=False):
                if bulk is not None:
                    bulk(after - before, n)
                else:
                    for _ in range(n):
                        observer.on_token(after - before)
        self.iterations += done
        self._current = None
        self._ready_s = end
        self.step(end)
        return done

    def advance_to(self, t_s: float) -> list[Iteration]:
        """As EngineCore.advance_to (every step due strictly before ``t_s``), skipping steady stretches; the
        iterations ended by ``step`` (skipped ones are not materialized; they finish no request)."""
        ended = []
        while (event := self.next_event_s()) is not None and event < t_s:
            if self._current is not None and self.skip(t_s):
                continue
            iteration = self.step(event)
            if iteration is not None:
                ended.append(iteration)
        return ended

    def next_change_s(self) -> float | None:
        """When the replica next needs the simulator: the end of the iteration that finishes a request or
        leaves the steady stretch (admissions, preemption) or, outside a stretch, the next step; None if idle."""
        current = self._steady()
        if current is None:
            return self.next_event_s()
        ends, cut = self._cached_stretch(current)
        if not ends:
            return current.end_s
        if cut:
            return ends[-1]
        n = len(current.scheduled)
        return ends[-1] + self.params.iteration_s(n, current.kv_read_tokens + len(ends) * n)
