"""The fast path's watcher thread (INFERNO_FAST_PATH=on): every interval, read the servers' saturation signals
over the short window and, when services/controller/fastpath.py says a server departs from the last cycle's
prediction, run a cycle now over that window (docs/contract.md s9).

The signals come from the collector (Collect with the short window and without forecasting: waiting requests,
KV-cache usage, TTFT, Ready and spec replicas per managed server); the prediction from the loop's last record.
A failing read is logged once per distinct error and the watch goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from services.controller.fastpath import FastPath, FastPathSettings, Signals, expectations
from services.controller.loop import ControlLoop
from services.core import model as m
from services.runtime.logs import get_logger

_log = get_logger("controller")


def signals_of(collection: m.Collection) -> dict[str, Signals]:
    """Each managed server's saturation signals from a collection."""
    found = {}
    for managed in collection.managed:
        observed = managed.server.observed or m.ObservedMetrics()
        found[managed.name] = Signals(observed.requests_waiting, observed.kv_cache_usage, observed.ttft_ms,
                                      managed.ready_replicas, managed.spec_replicas)
    return found


class FastPathWatcher:
    """Watches every ``interval_s`` through ``read`` (-> Collection over ``window``) and runs ``loop`` cycles."""

    def __init__(self, loop: ControlLoop, read: Callable[[], m.Collection], settings: FastPathSettings,
                 interval_s: float, window: str, now_s: Callable[[], float] = time.monotonic) -> None:
        self._loop, self._read, self._window = loop, read, window
        self._path = FastPath(settings)
        self._interval_s = interval_s
        self._now_s = now_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error = ""

    def watch_once(self) -> str:
        """One watch: the reason a cycle ran now, or "" when none did."""
        try:
            signals = signals_of(self._read())
        except Exception as err:  # noqa: BLE001 - a failed watch is no reason to stop watching
            if str(err) != self._error:
                _log.warning("fast_path_watch_failed", error=str(err)[:300])
            self._error = str(err)
            return ""
        self._error = ""
        last = self._loop.last
        why = self._path.check(self._now_s(), signals, expectations(last.rows) if last else {})
        if why:
            _log.info("fast_path_fired", reason=why, window=self._window)
            self._loop.invoke(window=self._window, trigger=f"fast path: {why}")
        return why

    def start(self) -> None:
        """Watch in a background thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="fast-path", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.watch_once()
            except Exception as err:  # noqa: BLE001 - the watcher must survive a crashing cycle
                _log.error("fast_path_crashed", error=str(err))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop watching, waiting up to ``timeout_s`` for a running watch (and its cycle) to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
