"""The shape of an emulated load: arrival-rate schedules (phases) and token-length distributions.

A schedule is a list of phases, each lasting ``duration_s``:
- constant: ``{"rate_rps": 1.0, "duration_s": 60}``;
- linear ramp: ``{"rate_rps": 0.5, "to_rps": 2.0, "duration_s": 60}``;
- stair-step: ``{"stairs": {"from_rps": 0.5, "to_rps": 2.0, "step_rps": 0.5, "every_s": 600}}`` (its duration
  is the number of steps x every_s; a step schedule is a list of constant phases).
A length is an int (fixed) or ``{"dist": "exponential", "mean": 64, "min": 1, "max": 512}`` or
``{"dist": "uniform", "low": 16, "high": 128}``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Phase:
    """A stretch of ``duration_s`` whose rate goes linearly from ``rate_rps`` to ``to_rps`` (equal: constant)."""

    duration_s: float
    rate_rps: float
    to_rps: float

    def rate_at(self, t_s: float) -> float:
        """The rate ``t_s`` seconds into the phase."""
        if self.duration_s <= 0:
            return self.to_rps
        return self.rate_rps + (self.to_rps - self.rate_rps) * min(max(t_s / self.duration_s, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Phases one after the other; the rate is 0 after the last."""

    phases: tuple[Phase, ...]

    @property
    def duration_s(self) -> float:
        """Total length of the schedule."""
        return sum(p.duration_s for p in self.phases)

    @property
    def peak_rps(self) -> float:
        """The highest rate anywhere in the schedule."""
        return max((max(p.rate_rps, p.to_rps) for p in self.phases), default=0.0)

    def rate_at(self, t_s: float) -> float:
        """The arrival rate (req/s) ``t_s`` seconds after the start."""
        for phase in self.phases:
            if t_s < phase.duration_s:
                return phase.rate_at(t_s)
            t_s -= phase.duration_s
        return 0.0


def constant(rate_rps: float, duration_s: float) -> Schedule:
    """A one-phase constant schedule."""
    return Schedule((Phase(duration_s, rate_rps, rate_rps),))


def stairs(from_rps: float, to_rps: float, step_rps: float, every_s: float) -> tuple[Phase, ...]:
    """Constant phases from ``from_rps`` to ``to_rps`` (inclusive) in steps of ``step_rps``, ``every_s`` each."""
    count = int(math.floor((to_rps - from_rps) / step_rps + 1e-9)) + 1
    return tuple(Phase(every_s, from_rps + i * step_rps, from_rps + i * step_rps) for i in range(max(count, 1)))


def parse_schedule(phases: list[dict[str, Any]]) -> Schedule:
    """A Schedule from its config form (module docstring); ValueError on an unknown or negative field."""
    result: list[Phase] = []
    for spec in phases:
        if "stairs" in spec:
            s = spec["stairs"]
            result.extend(stairs(float(s["from_rps"]), float(s["to_rps"]), float(s["step_rps"]), float(s["every_s"])))
            continue
        rate = float(spec["rate_rps"])
        phase = Phase(float(spec["duration_s"]), rate, float(spec.get("to_rps", rate)))
        if min(phase.duration_s, phase.rate_rps, phase.to_rps) < 0:
            raise ValueError(f"negative value in phase {spec!r}")
        result.append(phase)
    return Schedule(tuple(result))


@dataclass(frozen=True, slots=True)
class Length:
    """A token-length distribution: fixed (``dist`` "fixed"), exponential or uniform, clipped to [low, high]."""

    dist: str = "fixed"
    mean: float = 64
    low: int = 1
    high: int = 1 << 20

    def sample(self, rng: random.Random) -> int:
        """One length."""
        if self.dist == "exponential":
            value = rng.expovariate(1.0 / self.mean)
        elif self.dist == "uniform":
            value = rng.uniform(self.low, self.high)
        else:
            value = self.mean
        return int(min(max(round(value), self.low), self.high))


def parse_length(spec: Any, minimum: int = 1) -> Length:
    """A Length from an int or a dict (module docstring)."""
    if isinstance(spec, int | float):
        return Length("fixed", float(spec), minimum, max(int(spec), minimum))
    dist = spec.get("dist", "fixed")
    if dist not in ("fixed", "exponential", "uniform"):
        raise ValueError(f"unknown length distribution {dist!r}")
    if dist == "uniform":
        low, high = int(spec["low"]), int(spec["high"])
        return Length("uniform", (low + high) / 2, low, high)
    return Length(dist, float(spec["mean"]), int(spec.get("min", minimum)), int(spec.get("max", 1 << 20)))
