"""The fast path between control periods: run a cycle now when a server's observed state departs from what the
model predicted at the last cycle (docs/contract.md s9).

Pure (no clock, env or I/O): the caller passes the time and, every few seconds, each server's cheap saturation
signals averaged over a short window (requests waiting, KV-cache usage, TTFT; services/collector/aggregate
Measurement over INFERNO_FAST_PATH_WINDOW). A server departs when, sustained over that window,
- its waiting requests exceed both ``waiting_per_replica`` per Ready replica and ``ratio`` x the queue the model
  predicted (Little's law: arrival rate x predicted TTFT), or
- its KV cache is fuller than ``kv_cache_usage``, or
- its TTFT is above both its SLO and ``ratio`` x the predicted TTFT.
The watcher then asks for a cycle, at most once per ``cooldown_s``, and not while the server has replicas
requested but not Ready (capacity on the way: the next cycle sees them; asking again would not add any).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.controller.cyclerow import CycleRow


@dataclass(frozen=True, slots=True)
class Signals:
    """One server's saturation signals over the short window: waiting requests (summed over pods), KV-cache
    use (mean, 0..1), mean TTFT (ms), Ready and spec replicas; None where not measured."""

    requests_waiting: float | None = None
    kv_cache_usage: float | None = None
    ttft_ms: float | None = None
    ready_replicas: int = 0
    spec_replicas: int = 0

    @property
    def pending_replicas(self) -> int:
        """Replicas requested but not Ready yet."""
        return max(self.spec_replicas - self.ready_replicas, 0)


@dataclass(frozen=True, slots=True)
class Expected:
    """What the last cycle's model predicted for a server: arrival rate sized for (req/min), mean TTFT (ms) and
    the TTFT SLO (ms; 0 = none)."""

    arrival_rate_rpm: float = 0.0
    ttft_ms: float = 0.0
    slo_ttft_ms: float = 0.0

    @property
    def waiting(self) -> float:
        """Requests the model expects in the queue (Little's law over the time to first token)."""
        return self.arrival_rate_rpm / 60.0 * self.ttft_ms / 1000.0


@dataclass(frozen=True, slots=True)
class FastPathSettings:
    """Thresholds (see the module docstring) and the cooldown between fast-path cycles (s)."""

    waiting_per_replica: float = 8.0
    kv_cache_usage: float = 0.9
    ratio: float = 2.0
    cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("waiting_per_replica", "kv_cache_usage", "ratio", "cooldown_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")


def departure(signals: Signals, expected: Expected | None, settings: FastPathSettings) -> str:
    """Why ``signals`` depart from ``expected`` (a sentence), or "" when they do not."""
    expected = expected or Expected()
    ready = max(signals.ready_replicas, 1)
    waiting = signals.requests_waiting
    if waiting is not None and waiting > max(settings.waiting_per_replica * ready,
                                             settings.ratio * expected.waiting):
        return (f"{waiting:.1f} requests waiting on {signals.ready_replicas} Ready replicas "
                f"(model expected {expected.waiting:.1f})")
    kv = signals.kv_cache_usage
    if kv is not None and kv > settings.kv_cache_usage:
        return f"KV cache {100 * kv:.0f}% full (threshold {100 * settings.kv_cache_usage:.0f}%)"
    ttft = signals.ttft_ms
    if ttft is not None and expected.slo_ttft_ms > 0 and ttft > max(expected.slo_ttft_ms,
                                                                     settings.ratio * expected.ttft_ms):
        return (f"TTFT {ttft:.0f} ms above the SLO {expected.slo_ttft_ms:.0f} ms "
                f"(model predicted {expected.ttft_ms:.0f} ms)")
    return ""


class FastPath:
    """Decides, at each watch, whether to run a cycle now; remembers only when it last asked for one."""

    def __init__(self, settings: FastPathSettings) -> None:
        self.settings = settings
        self.last_fired_s: float | None = None

    def check(self, now_s: float, signals: Mapping[str, Signals],
              expected: Mapping[str, Expected]) -> str:
        """The reason to run a cycle now ("server: why"; several joined by "; "), or "" (no departure, in the
        cooldown, or every departing server has capacity on the way). Records the firing."""
        if self.last_fired_s is not None and now_s - self.last_fired_s < self.settings.cooldown_s:
            return ""
        reasons = []
        for name in sorted(signals):
            found = signals[name]
            why = departure(found, expected.get(name), self.settings)
            if why and found.pending_replicas == 0:
                reasons.append(f"{name}: {why}")
        if not reasons:
            return ""
        self.last_fired_s = now_s
        return "; ".join(reasons)


def expectations(rows: Iterable[CycleRow]) -> dict[str, Expected]:
    """Per server, what a cycle's allocation table (CycleRecord.rows) predicted: rows without a prediction
    (unallocated, skipped cycle) expect nothing."""
    found = {}
    for row in rows:
        if row.predicted_ttft_ms is not None:
            found[row.server] = Expected(row.arrival_rate_rpm, row.predicted_ttft_ms, row.slo_ttft_ms or 0.0)
    return found
