"""The control loop: one cycle at a time under one lock, on a ticker and on demand; records logged and exported.

A caller of ``invoke`` while a cycle runs waits for it, then runs its own cycle. Each record is appended as
one JSON line to the cycle log and summarised in one structlog event (``cycle_applied``, ``cycle_advised``,
``cycle_skipped``, ``cycle_unconfirmed``). The cycle log is rotated by size: a line that would take it past
``max_bytes`` first moves it to ``<path>.1`` (replacing the previous one), so it never holds more than about
2 x ``max_bytes`` (0 = no limit). A failing write is a warning once per distinct error (the controller
checks the path at start).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from services.controller.cycle import CycleClients, CycleRecord, run_cycle
from services.controller.metrics import ControllerMetrics
from services.controller.modelcheck import ModelChecker
from services.core import datafiles
from services.core import model as m
from services.core.redact import redact_tree
from services.perfmodel.tuner import Tuner
from services.runtime.logs import get_logger

_log = get_logger("controller")


def static_loader(data_path: str) -> Callable[[], tuple[m.SystemData, m.Capacity]]:
    """A loader of the static data in ``data_path`` (re-read every cycle, so ConfigMap updates apply)."""

    def load() -> tuple[m.SystemData, m.Capacity]:
        loaded = datafiles.load_system_dir(data_path, require_servers=False)
        return loaded.system, loaded.system.capacity

    return load


class ControlLoop:
    """Runs cycles one at a time; see the module docstring."""

    def __init__(self, clients: CycleClients, load_static: Callable[[], tuple[m.SystemData, m.Capacity]],
                 metrics: ControllerMetrics, cycle_log_path: str = "", dry_run: bool = False,
                 cycle_log_max_bytes: int = 0, tuner: Tuner | None = None) -> None:
        self._clients, self._load_static, self._metrics = clients, load_static, metrics
        self._tuner = tuner
        self._cycle_log_path, self._dry_run = cycle_log_path, dry_run
        self._cycle_log_max_bytes = cycle_log_max_bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._cycle_id = 0
        self._log_error = ""
        self._checker = ModelChecker()
        self.last: CycleRecord | None = None
        self.static: m.SystemData | None = None
        """The static data the last cycle read (for the fast path's watch collections between cycles)."""

    def invoke(self, window: str = "", trigger: str = "") -> CycleRecord:
        """Run one cycle (waiting for a running one to finish first) and return its record; ``window`` ("" =
        the collector's) is the rate window it collects over, ``trigger`` why it runs (logged and kept in the
        record: "period", "invoke", "fast path: ...")."""
        with self._lock:
            self._cycle_id += 1
            # every log line of the cycle, and every call it makes (gRPC metadata), carries the cycle id
            with structlog.contextvars.bound_contextvars(cycle_id=self._cycle_id):
                started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
                record = replace(run_cycle(self._cycle_id, started_at, self._read_static, self._clients,
                                           time.monotonic, dry_run=self._dry_run, tuner=self._tuner,
                                           checker=self._checker, window=window), trigger=trigger)
                self.last = record
                self._metrics.observe(record)
                self._append(record)
                _log.info(f"cycle_{record.outcome}", skip_reason=record.skip_reason or None,
                          total_ms=record.timings_ms.get("total"), servers=len(record.rows),
                          total_cost_per_hour=record.total_cost_per_hour, trigger=trigger or None)
        return record

    def _read_static(self) -> tuple[m.SystemData, m.Capacity]:
        static = self._load_static()
        self.static = static[0]
        return static

    def _append(self, record: CycleRecord) -> None:
        if not self._cycle_log_path:
            return
        try:
            os.makedirs(os.path.dirname(self._cycle_log_path) or ".", exist_ok=True)
            line = (json.dumps(redact_tree(record.as_json()), sort_keys=True) + "\n").encode("utf-8")
            size = os.path.getsize(self._cycle_log_path) if os.path.exists(self._cycle_log_path) else 0
            if self._cycle_log_max_bytes and size and size + len(line) > self._cycle_log_max_bytes:
                os.replace(self._cycle_log_path, self._cycle_log_path + ".1")
            with open(self._cycle_log_path, "ab") as handle:
                handle.write(line)
        except OSError as err:
            if str(err) != self._log_error:  # once per distinct failure, not every cycle
                _log.warning("cycle_log_failed", path=self._cycle_log_path, error=str(err))
            self._log_error = str(err)
            return
        if self._log_error:
            _log.info("cycle_log_recovered", path=self._cycle_log_path)
            self._log_error = ""

    def start_ticker(self, period_s: float) -> None:
        """Run a cycle every ``period_s`` seconds in a background thread (0 = only on demand)."""
        if period_s <= 0:
            return
        self._ticker = threading.Thread(target=self._tick, args=(period_s,), name="control-ticker", daemon=True)
        self._ticker.start()

    def _tick(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            try:
                self.invoke(trigger="period")
            except Exception as err:  # noqa: BLE001 - the ticker must survive any single cycle
                _log.error("cycle_crashed", error=str(err), exc_info=True)

    @property
    def ticking(self) -> bool:
        """True while the ticker thread runs (or when there is none: on-demand mode)."""
        return self._ticker is None or self._ticker.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the ticker, waiting up to ``timeout_s`` for a running cycle to end."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout_s)
