"""The clock-free engine core: hand-computed token times, event skipping, KV blocks on demand with preemption
by recomputation, the token budget with chunked prefill, and the same token times in event time as under the
real-time driver on a fake wall clock."""

from __future__ import annotations

import math
import random
import time
from collections import deque

import pytest

from emulator.enginecore import EngineCore, EngineParams, Iteration, Request
from emulator.vllmengine import Engine
from emulator.vllmmetrics import VllmMetrics


def test_one_request_ttft_is_its_prefill_iteration_and_itl_one_decode_each():
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0.5, gamma_ms=0.01))
    request = core.add(Request(100, 3), now_s=2.0)
    assert core.next_event_s() == 2.0
    core.advance_to(math.inf)
    prefill_s = (10 + 0.5 * 100 + 0.01 * 100) / 1000
    decode1_s, decode2_s = (10 + 0.5 + 0.01 * 101) / 1000, (10 + 0.5 + 0.01 * 102) / 1000
    assert request.first_token_s == pytest.approx(2.0 + prefill_s)
    assert request.finished_s == pytest.approx(2.0 + prefill_s + decode1_s + decode2_s)
    assert (request.generated, core.has_work, core.next_event_s()) == (3, False, None)


def test_step_before_the_iteration_ends_is_refused_and_arrivals_join_the_next_iteration():
    core = EngineCore(EngineParams(alpha_ms=100, beta_ms=0, gamma_ms=0))
    first = core.add(Request(1, 2), 0.0)
    assert core.step(0.0) is None and core.current.end_s == pytest.approx(0.1)
    with pytest.raises(ValueError, match="before the iteration in flight ends"):
        core.step(0.05)
    second = core.add(Request(1, 1), 0.05)
    ended = core.step(0.1)
    assert ended.batch == [first] and core.current.batch == [first, second] and core.current.prefills == 1
    assert core.advance_to(0.2) == [] and [i.finished for i in core.advance_to(0.21)] == [[first, second]]


def test_a_request_larger_than_the_kv_cache_is_refused():
    core = EngineCore(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, kv_cache_tokens=100))
    with pytest.raises(ValueError, match=r"does not fit the KV cache \(6 blocks of 16 = 96 tokens\)"):
        core.add(Request(90, 20), 0.0)
    assert not core.has_work


def _run(core: EngineCore, arrivals: list[tuple[float, Request]]) -> list[Iteration]:
    ended = []
    for arrival_s, request in arrivals:
        ended += core.advance_to(arrival_s)
        core.add(request, arrival_s)
    return ended + core.advance_to(math.inf)


def test_when_blocks_run_out_the_last_admitted_is_preempted_recomputed_and_finishes():
    metrics = VllmMetrics("m")
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, kv_cache_tokens=96), metrics)  # 6 blocks
    first, second, third = (Request(20, 20) for _ in range(3))
    iterations = _run(core, [(0.0, first), (0.0, second), (0.0, third)])
    # the prompts take 2 blocks each; at 33 tokens of context the first needs a third block: the last admitted
    # (third) is preempted and waits at the front until the others finish, then recomputes prompt + 13 tokens
    preempting = [i for i in iterations if i.preempted]
    assert [i.preempted for i in preempting] == [[third]]
    assert preempting[0].scheduled == [(first, 1), (second, 1)] and preempting[0].prefills == 0
    assert third.generated == 20 and third.preemptions == 1 and core.preemptions == metrics.preemptions == 1
    recompute = next(i for i in iterations if (third, 33) in i.scheduled)
    assert recompute.start_s == max(first.finished_s, second.finished_s) and recompute.batch == [third]
    assert [r.generated for r in (first, second, third)] == [20, 20, 20] and not core.has_work
    assert core.used_blocks == 0 and metrics.success == 3


def test_blocks_fill_up_to_one_and_free_on_finish():
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, kv_cache_tokens=96))
    for _ in range(3):
        core.add(Request(20, 20), 0.0)
    core.step(0.0)
    assert core.used_blocks == 6 and core.kv_usage == 1.0
    core.advance_to(math.inf)
    assert core.kv_usage == 0.0


def test_a_request_whose_blocks_are_not_free_waits_without_preempting():
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, kv_cache_tokens=64))  # 4 blocks
    big, small = Request(40, 10), Request(30, 5)
    _run(core, [(0.0, big), (0.001, small)])
    assert small.scheduled_s == big.finished_s and core.preemptions == 0 and small.generated == 5


def test_the_token_budget_chunks_a_long_prompt_and_decodes_go_first():
    core = EngineCore(EngineParams(alpha_ms=1, beta_ms=0.1, gamma_ms=0, max_num_seqs=8, max_num_batched_tokens=100))
    short, long = Request(10, 5), Request(250, 2)
    iterations = _run(core, [(0.0, short), (0.0005, long)])
    assert [i.scheduled for i in iterations[:4]] == [[(short, 10)], [(short, 1), (long, 99)],
                                                     [(short, 1), (long, 99)], [(short, 1), (long, 52)]]
    assert [i.computed_tokens for i in iterations[:4]] == [10, 100, 100, 53]
    assert iterations[1].duration_s == pytest.approx((1 + 0.1 * 100) / 1000)
    assert [i.batch for i in iterations[1:4]] == [[short], [short], [short, long]]
    assert long.first_token_s == iterations[3].end_s and short.generated == 5 and long.generated == 2


def test_without_chunked_prefill_a_prompt_waits_for_the_whole_budget_or_is_refused():
    params = EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, max_num_seqs=8, max_num_batched_tokens=100,
                          enable_chunked_prefill=False)
    core = EngineCore(params)
    with pytest.raises(ValueError, match="does not fit max_num_batched_tokens 100 without chunked prefill"):
        core.add(Request(250, 2), 0.0)
    decoding = [Request(1, 30) for _ in range(5)]
    waiting = Request(96, 2)
    iterations = _run(core, [*((0.0, r) for r in decoding), (0.0005, waiting)])
    # 5 decodes leave 95 of the budget: the 96-token prompt waits for one of them to finish, then goes whole
    admitted = next(i for i in iterations if (waiting, 96) in i.scheduled)
    assert admitted.start_s == decoding[0].finished_s and waiting.generated == 2


def test_a_token_budget_under_max_num_seqs_is_refused_as_vllm_does():
    with pytest.raises(ValueError, match=r"max_num_batched_tokens \(100\) must be >= max_num_seqs \(256\)"):
        EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, max_num_batched_tokens=100)


def test_max_model_len_refuses_longer_contexts_with_vllms_message():
    core = EngineCore(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, max_model_len=100))
    with pytest.raises(ValueError, match="maximum context length is 100 tokens. However, you requested 101 tokens"):
        core.add(Request(90, 11), 0.0)
    assert core.add(Request(90, 10), 0.0).prompt_tokens == 90
    assert core.params.context_limit == 100
    assert EngineParams(1, 0, 0, kv_cache_tokens=1000).context_limit == 992  # 62 blocks of 16


def _arrivals(seed: int, count: int) -> list[tuple[float, int, int]]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(count):
        t += rng.expovariate(40.0)
        out.append((t, rng.randint(1, 200), rng.randint(1, 40)))
    return out


_PARAMS = EngineParams(alpha_ms=8, beta_ms=0.05, gamma_ms=0.002, max_num_seqs=4, kv_cache_tokens=600,
                       max_num_batched_tokens=128)
"""Small enough that the arrivals below queue for the batch, get preempted and have their prompts chunked."""


def _event_time(arrivals: list[tuple[float, int, int]]) -> tuple[list[list[float]], bytes]:
    metrics = VllmMetrics("m")
    core = EngineCore(_PARAMS, metrics)
    times: dict[int, list[float]] = {}
    requests = []

    def record(iterations):
        for iteration in iterations:
            for request in iteration.batch:
                times.setdefault(id(request), []).append(iteration.end_s)

    for arrival_s, prompt, out in arrivals:
        record(core.advance_to(arrival_s))
        requests.append(core.add(Request(prompt, out), arrival_s))
    record(core.advance_to(math.inf))
    return [times[id(r)] for r in requests], metrics.render()


class _FakeWallClock:
    """A clock that only moves when the engine thread sleeps (exactly as long as asked), delivering the
    arrivals that fall inside the sleep; while the engine is idle the test thread moves it to the next one."""

    def __init__(self, arrivals: list[tuple[float, int, int]]) -> None:
        self.t = 0.0
        self.pending = deque(arrivals)
        self.requests = []
        self.engine: Engine | None = None

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        target = self.t + seconds
        while self.pending and self.pending[0][0] <= target:
            self.deliver()
        self.t = max(self.t, target)

    def deliver(self) -> None:
        arrival_s, prompt, out = self.pending.popleft()
        self.t = arrival_s
        self.requests.append(self.engine.submit(prompt, out))


def _fake_wall_clock(arrivals: list[tuple[float, int, int]]) -> tuple[list[list[float]], bytes]:
    clock = _FakeWallClock(arrivals)
    metrics = VllmMetrics("m")
    engine = Engine(_PARAMS, metrics, clock=clock.now, sleep=clock.sleep)
    clock.engine = engine
    engine.start()
    try:
        deadline = time.monotonic() + 60
        while clock.pending and time.monotonic() < deadline:
            with engine._cond:  # the engine is idle: nothing sleeps, so the test moves the clock
                if clock.pending and not engine.core.has_work:
                    clock.deliver()
                    continue
            time.sleep(0.001)
        assert engine.wait_idle(1e9)
    finally:
        engine.stop()
    times = []
    for request in clock.requests:
        emitted = []
        while (event := request.events.get(timeout=5)) is not None:
            emitted.append(event)
        times.append(emitted)
    return times, metrics.render()


def test_event_time_and_fake_wall_clock_give_the_same_token_times():
    arrivals = _arrivals(seed=7, count=60)
    event_times, event_metrics = _event_time(arrivals)
    wall_times, wall_metrics = _fake_wall_clock(arrivals)
    assert [len(t) for t in event_times] == [out for _, _, out in arrivals]
    assert wall_times == event_times
    assert wall_metrics == event_metrics
    # the load queued: some requests waited for the batch or the KV cache (else the test proves little)
    assert any(t[0] - a > 0.05 for t, (a, _, _) in zip(event_times, arrivals, strict=True))
    assert "vllm:num_preemptions_total{model_name=\"m\"} 0.0" not in event_metrics.decode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_overload_with_a_tight_cache_every_request_finishes_with_all_its_tokens(seed):
    rng = random.Random(seed)
    params = EngineParams(alpha_ms=5, beta_ms=0.02, gamma_ms=0.001, max_num_seqs=16, kv_cache_tokens=1024,
                          max_num_batched_tokens=256, enable_chunked_prefill=seed != 3)
    core = EngineCore(params)
    t, requests, checked = 0.0, [], 0
    for _ in range(300):
        t += rng.expovariate(30.0)
        requests.append(Request(rng.randint(0, 200), rng.randint(1, 50)))
        for iteration in core.advance_to(t):
            running = core.running()
            # the blocks held are the running requests' and never more than the cache
            assert core.used_blocks == sum(r.blocks for r in running) <= params.num_blocks
            assert iteration.computed_tokens <= params.token_budget
            checked += 1
        core.add(requests[-1], t)
    core.advance_to(math.inf)
    assert checked > 100 and core.preemptions > 0 and core.used_blocks == 0 and not core.has_work
    for request in requests:
        assert request.generated == request.max_tokens and request.finished
        assert request.arrival_s <= request.scheduled_s < request.first_token_s <= request.finished_s


def test_cancel_takes_a_request_out_of_the_queue_or_the_batch_at_once():
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, max_num_seqs=1, kv_cache_tokens=160))
    running, waiting, other = core.add(Request(40, 5), 0.0), core.add(Request(10, 5), 0.0), Request(10, 2)
    core.step(0.0)
    core.cancel(waiting)
    assert (core.num_running, core.num_waiting) == (1, 0)
    core.cancel(running)  # mid-iteration: its blocks are free now and it gets no token at the iteration's end
    assert (core.num_running, core.used_blocks) == (0, 0)
    core.add(other, 0.005)
    core.advance_to(math.inf)
    assert (running.generated, waiting.generated, other.generated) == (0, 0, 2)
    assert other.scheduled_s == pytest.approx(0.01)


def _admission_order(policy: str) -> list[str]:
    """One replica running one request at a time; while A runs, B (priority 5), C (1) and D (1) arrive."""
    core = EngineCore(EngineParams(alpha_ms=100, beta_ms=0, gamma_ms=0, max_num_seqs=1, scheduling_policy=policy))
    names = {}
    for at_s, name, priority in ((0.0, "A", 9), (0.01, "B", 5), (0.02, "C", 1), (0.03, "D", 1)):
        core.advance_to(at_s)
        names[id(core.add(Request(1, 3, priority=priority), at_s))] = name
    order = []
    for iteration in core.advance_to(math.inf):
        order += [names[id(r)] for r in iteration.finished]
    return order


def test_priority_policy_admits_the_lowest_priority_value_first_fcfs_within_and_never_evicts_the_running():
    assert _admission_order("priority") == ["A", "C", "D", "B"]  # A (least important) keeps running
    assert _admission_order("fcfs") == ["A", "B", "C", "D"]  # priority ignored under FCFS


def test_a_preempted_request_goes_back_ahead_of_its_own_priority_but_behind_more_important_ones():
    core = EngineCore(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, scheduling_policy="priority"))
    waiting = [Request(1, 1, priority=p) for p in (0, 2, 2)]
    for r in waiting:
        core._enqueue(r, front=False)
    victim = Request(1, 1, priority=2)
    core._enqueue(victim, front=True)
    assert core.waiting() == [waiting[0], victim, waiting[1], waiting[2]]
    with pytest.raises(ValueError, match="scheduling_policy"):
        EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, scheduling_policy="lifo")


def _kv_full(policy: str) -> tuple[dict[str, Request], list[Iteration]]:
    """6 KV blocks of 16 tokens. "low" (priority 5) arrives first and runs; "high1" (prompt 30) and "high2"
    (priority 0) join it and fill the cache; four iterations later high1 needs a third block and none is free."""
    core = EngineCore(EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, kv_cache_tokens=96, scheduling_policy=policy))
    reqs = {"low": Request(20, 20, priority=5), "high1": Request(30, 20, priority=0),
            "high2": Request(20, 20, priority=0)}
    return reqs, _run(core, [(0.0, reqs["low"]), (0.001, reqs["high1"]), (0.002, reqs["high2"])])


def test_priority_policy_evicts_the_least_important_running_request_when_the_kv_cache_is_full():
    reqs, iterations = _kv_full("priority")
    low, high1, high2 = reqs["low"], reqs["high1"], reqs["high2"]
    preempting = [i for i in iterations if i.preempted]
    # low was scheduled first in that iteration (admitted first): it is evicted all the same and its token
    # goes back to the budget, while the more important requests keep running
    first = preempting[0]
    assert first.preempted == [low]
    assert first.scheduled == [(high1, 1), (high2, 1)] and low not in first.batch
    assert first.computed_tokens == 2 and first.kv_read_tokens == 33 + 23
    # no more important request is evicted while low runs; later, with only the two high ones running and the
    # cache full again, the later arrival of the two (high2) is the victim
    assert [i.preempted for i in preempting[1:]] == [[high2]] and high1.preemptions == 0 and low.preemptions == 1
    readmitted = next(i for i in iterations if (low, 24) in i.scheduled)  # its prompt + the 4 tokens it had
    assert preempting[1].start_s < readmitted.start_s  # low was waiting, not running, when high2 was evicted
    assert high2.finished_s < low.finished_s
    assert [r.generated for r in (low, high1, high2)] == [20, 20, 20]
    # FCFS evicts the most recently admitted one instead, more important or not
    fcfs, fcfs_iterations = _kv_full("fcfs")
    assert [i.preempted for i in fcfs_iterations if i.preempted][0] == [fcfs["high2"]]
    assert fcfs["low"].preemptions == 0
