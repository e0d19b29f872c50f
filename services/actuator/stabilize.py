"""Scale-down stabilization, as the HPA's behavior.scaleDown.stabilizationWindowSeconds.

Every cycle's desired replicas per Deployment are remembered for ``window_s`` seconds (with a rising load
forecast, the count for its point forecast rather than for the upper bound sized: plan.Change.hold_replicas);
a scale-down goes no lower than the highest count of that window (never above the current replicas), so
a brief dip in load does not remove a replica that the next cycle would add back. Scaling up is never
delayed. The memory is the actuator process's own; a Deployment seen for the first time (also after a
restart) enters the window with its current replicas, as the HPA controller's first recommendation does, so a
restart does not let a scale-down through unheld.

Pure: the caller passes the time (seconds on any monotonic clock).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable


class ScaleDownWindow:
    """Desired replica counts per key over the last ``window_s`` seconds (0 = no stabilization)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = max(float(window_s), 0.0)
        self._seen: dict[Hashable, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def highest(self, key: Hashable, now_s: float, current: int, *, remember: bool = True) -> int:
        """The highest desired count recorded for ``key`` within the window up to ``now_s`` (0 if none, or
        without a window); a key never seen before is first recorded with ``current`` replicas. With
        ``remember`` false (a dry run) nothing is recorded or dropped: the answer is the same, the memory
        untouched."""
        if self.window_s <= 0:
            return 0
        with self._lock:
            first = deque([(now_s, int(current))])
            if remember:
                self._seen.setdefault(key, first)
                entries = self._prune(key, now_s)
            else:
                entries = [(t, d) for t, d in self._seen.get(key, first) if t >= now_s - self.window_s]
            return max((desired for _, desired in entries), default=0)

    def record(self, key: Hashable, desired: int, now_s: float) -> None:
        """Remember that ``key`` wanted ``desired`` replicas at ``now_s``."""
        if self.window_s <= 0:
            return
        with self._lock:
            self._prune(key, now_s).append((now_s, int(desired)))

    def forget(self, key: Hashable) -> None:
        """Drop ``key`` (its Deployment is gone)."""
        with self._lock:
            self._seen.pop(key, None)

    def _prune(self, key: Hashable, now_s: float) -> deque[tuple[float, int]]:
        entries = self._seen.setdefault(key, deque())
        while entries and entries[0][0] < now_s - self.window_s:
            entries.popleft()
        return entries
