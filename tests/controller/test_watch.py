"""The fast path's watcher: a saturation burst runs a cycle now over the short window, logged with why."""

from __future__ import annotations

from services.controller.cycle import CycleRecord
from services.controller.cyclerow import CycleRow
from services.controller.fastpath import FastPathSettings
from services.controller.watch import FastPathWatcher, signals_of
from services.core import model as m

ROW = CycleRow("premium", arrival_rate_rpm=90.0, predicted_ttft_ms=250.0, slo_ttft_ms=1000.0)


class FakeLoop:
    """The control loop as the watcher sees it: the last record, and invoke."""

    def __init__(self) -> None:
        self.last = CycleRecord(1, "t", "applied", rows=(ROW,))
        self.invoked: list[tuple[str, str]] = []

    def invoke(self, window: str = "", trigger: str = "") -> CycleRecord:
        self.invoked.append((window, trigger))
        return self.last


def _collection(waiting: float, ready: int = 1, spec: int = 1) -> m.Collection:
    observed = m.ObservedMetrics(requests_waiting=waiting, kv_cache_usage=0.4, ttft_ms=300.0)
    server = m.Server("premium", observed=observed)
    return m.Collection((m.ManagedServer(server, m.KubeRef("llm", "vllm"), spec, ready),))


def _watcher(readings: list[m.Collection], clock: list[float]) -> tuple[FastPathWatcher, FakeLoop]:
    loop = FakeLoop()
    watcher = FastPathWatcher(loop, lambda: readings.pop(0), FastPathSettings(cooldown_s=60.0), 10.0, "30s",
                              now_s=lambda: clock[0])
    return watcher, loop


def test_a_burst_runs_one_cycle_now_over_the_short_window_then_waits_for_the_cooldown() -> None:
    clock = [0.0]
    readings = [_collection(0.0), _collection(15.0), _collection(20.0), _collection(25.0)]
    watcher, loop = _watcher(readings, clock)
    reasons = []
    for t in (0.0, 10.0, 20.0, 70.0):
        clock[0] = t
        reasons.append(watcher.watch_once())
    assert [bool(r) for r in reasons] == [False, True, False, True]
    assert loop.invoked[0] == ("30s", "fast path: " + reasons[1])
    assert "15.0 requests waiting on 1 Ready replicas" in reasons[1]


def test_replicas_starting_hold_the_fast_path() -> None:
    watcher, loop = _watcher([_collection(30.0, ready=1, spec=3)], [0.0])
    assert watcher.watch_once() == "" and loop.invoked == []


def test_a_failing_read_is_no_cycle_and_the_watch_goes_on() -> None:
    loop = FakeLoop()

    def broken() -> m.Collection:
        raise RuntimeError("collector unavailable")

    watcher = FastPathWatcher(loop, broken, FastPathSettings(), 10.0, "30s", now_s=lambda: 0.0)
    assert watcher.watch_once() == "" and loop.invoked == []


def test_signals_are_read_from_the_collection() -> None:
    signals = signals_of(_collection(4.0, ready=2, spec=3))["premium"]
    assert (signals.requests_waiting, signals.ready_replicas, signals.pending_replicas) == (4.0, 2, 1)
