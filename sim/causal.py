"""Unannounced rises of a scenario's load: what no policy without foreknowledge sees coming (docs/evaluation.md).

A pod asked for when the load rises serves one start-up delay later. An unannounced rise is a jump of the offered
rate at a phase edge of the schedule that needs more replicas by the optimizer's model (a ramp inside a phase is
continuous: a forecast can see it coming). The ``causal`` reference policy (sim/policies/baseline.py) knows the
load ahead except across these jumps; ``at_risk_share`` is the share of all requests that arrive within one
start-up delay after one (expected, not sampled, arrivals): the requests a policy without headroom serves only as
far as the replicas already Ready carry them.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.loadshape import Schedule

_STEP_S = 1.0
"""Integration step of the schedule's rate (s)."""


def _arrivals(schedule: Schedule, start_s: float, end_s: float) -> float:
    """Expected requests in [start_s, end_s) (midpoint rule, 1 s steps)."""
    total, t = 0.0, start_s
    while t < end_s:
        width = min(_STEP_S, end_s - t)
        total += schedule.rate_at(t + width / 2.0) * width
        t += width
    return total


def rises(schedule: Schedule, size: Callable[[float], int]) -> list[tuple[float, float, float]]:
    """(time s, rate before, rate after) of every jump up of the rate at a phase edge that needs more replicas
    by ``size`` (rate req/s -> replicas)."""
    found, edge = [], 0.0
    for before, after in zip(schedule.phases, schedule.phases[1:], strict=False):
        edge += before.duration_s
        r0, r1 = before.rate_at(before.duration_s), after.rate_at(0.0)
        if r1 > r0 and size(r1) > size(r0):
            found.append((edge, r0, r1))
    return found


def at_risk_share(schedule: Schedule, size: Callable[[float], int], startup_s: float) -> float:
    """The share (0..1) of the schedule's requests that arrive within ``startup_s`` after an unannounced rise
    (``rises``). ValueError for a negative start-up delay or a schedule where no request arrives."""
    if not startup_s >= 0:
        raise ValueError(f"startup_s: must be >= 0 seconds, got {startup_s!r}")
    end_s = schedule.duration_s
    total = _arrivals(schedule, 0.0, end_s)
    if total <= 0:
        raise ValueError("schedule: no request arrives")
    at_risk = sum(_arrivals(schedule, t, min(t + startup_s, end_s)) for t, _, _ in rises(schedule, size))
    return at_risk / total
