"""The shape of an emulated load: arrival-rate schedules (phases) and token-length distributions.

A schedule is a list of phases, each lasting ``duration_s``:
- constant: ``{"rate_rps": 1.0, "duration_s": 60}``;
- linear ramp: ``{"rate_rps": 0.5, "to_rps": 2.0, "duration_s": 60}``;
- stair-step: ``{"stairs": {"from_rps": 0.5, "to_rps": 2.0, "step_rps": 0.5, "every_s": 600}}`` (its duration
  is the number of steps x every_s; a step schedule is a list of constant phases).
A token length (prompt or output) is a distribution, sampled once per request from the load's seeded
random generator (the same seed gives the same lengths):
- fixed: an int, or ``{"dist": "fixed", "mean": 64}``;
- exponential: ``{"dist": "exponential", "mean": 64, "min": 1, "max": 512}`` (rounded, clipped to [min, max]);
- uniform: ``{"dist": "uniform", "low": 16, "high": 128}`` (integers, both ends included);
- file: ``{"dist": "file", "path": "lengths.txt"}``, drawn uniformly from the numbers in the file (one per
  line, blank lines and ``#`` comments skipped, or one JSON list), e.g. the output lengths of a real data set;
  a relative path is taken from ``base_dir`` (the config file's directory).
On the command line (``python -m emulator loadgen --in/--out``) the same as ``64``, ``exponential:64`` (or
``exponential:MEAN:MIN:MAX``), ``uniform:LOW:HIGH`` and ``file:PATH``.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("fixed", "exponential", "uniform", "file")
LENGTH_FORMS = "N, exponential:MEAN[:MIN:MAX], uniform:LOW:HIGH or file:PATH"


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
    """A token-length distribution (module docstring): ``dist`` one of DISTRIBUTIONS; ``mean`` (fixed: the
    length; exponential: before clipping; uniform and file: the distribution's mean); samples are clipped to
    [``low``, ``high``]; ``values``: the numbers of a file distribution, ``source`` its path."""

    dist: str = "fixed"
    mean: float = 64
    low: int = 1
    high: int = 1 << 20
    values: tuple[int, ...] = ()
    source: str = ""

    def sample(self, rng: random.Random) -> int:
        """One length drawn with ``rng``."""
        if self.dist == "exponential":
            value = rng.expovariate(1.0 / self.mean)
        elif self.dist == "uniform":
            value = rng.randint(self.low, self.high)
        elif self.dist == "file":
            value = self.values[rng.randrange(len(self.values))]
        else:
            value = self.mean
        return int(min(max(round(value), self.low), self.high))


def read_lengths(path: str, minimum: int = 1) -> tuple[int, ...]:
    """The lengths in a file: a JSON list of numbers, or one number per line (blank lines and ``#`` comments
    skipped). Non-integral numbers are rounded. OSError when unreadable; ValueError naming the file (and the
    line) when empty, not numbers, or below ``minimum``."""
    with open(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as error:
            raise ValueError(f"length file {path}: not a JSON list of numbers ({error})") from None
        numbered = list(enumerate(items if isinstance(items, list) else [items], start=1))
        where = "item"
    else:
        numbered = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(text.splitlines(), start=1)]
        numbered = [(n, item) for n, item in numbered if item]
        where = "line"
    values = []
    for index, item in numbered:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"length file {path} {where} {index}: {item!r} is not a number") from None
        if not math.isfinite(value) or round(value) < minimum:
            raise ValueError(f"length file {path} {where} {index}: {item!r} must be a number >= {minimum}")
        values.append(int(round(value)))
    if not values:
        raise ValueError(f"length file {path}: no lengths in it")
    return tuple(values)


def parse_length(spec: Any, minimum: int = 1, base_dir: str | None = None) -> Length:
    """A Length from an int or a dict (module docstring); ``minimum``: the smallest length allowed (1 for
    outputs, 0 for prompts); ``base_dir`` resolves a relative file path. ValueError naming the field on an
    unknown distribution or a bad value; OSError on an unreadable file."""
    if isinstance(spec, bool) or not isinstance(spec, int | float | dict):
        raise ValueError(f"a token length must be a number or a mapping with 'dist', got {spec!r}")
    if isinstance(spec, int | float):
        if not math.isfinite(spec) or spec < minimum:
            raise ValueError(f"a fixed token length must be >= {minimum}, got {spec!r}")
        return Length("fixed", float(spec), minimum, max(int(spec), minimum))
    dist = spec.get("dist", "fixed")
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown length distribution {dist!r} (one of {', '.join(DISTRIBUTIONS)})")
    low, high = int(spec.get("min", minimum)), int(spec.get("max", 1 << 20))
    if dist == "uniform":
        low, high = int(spec["low"]), int(spec["high"])
        if not minimum <= low <= high:
            raise ValueError(f"uniform length: need {minimum} <= low <= high, got low {low} high {high}")
        return Length("uniform", (low + high) / 2, low, high)
    if dist == "file":
        path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(str(spec["path"])))
        values = read_lengths(path, minimum)
        return Length("file", sum(values) / len(values), min(values), max(values), values, path)
    mean = float(spec["mean"])
    if not math.isfinite(mean) or mean < max(minimum, 1e-9) or not minimum <= low <= high:
        raise ValueError(f"{dist} length: need mean >= {minimum} and {minimum} <= min <= max, got mean {mean} "
                         f"min {low} max {high}")
    return Length(dist, mean, low, high)


def length_arg(text: str, minimum: int = 1, base_dir: str | None = None) -> Length:
    """A Length from its command-line form (LENGTH_FORMS); ValueError naming the form or the bad value."""
    bad = ValueError(f"{text!r} is not a token length ({LENGTH_FORMS})")
    kind, _, rest = text.partition(":")
    if kind == "file" and rest:
        return parse_length({"dist": "file", "path": rest}, minimum, base_dir)
    try:
        numbers = [float(part) for part in (rest.split(":") if rest else [kind])]
    except ValueError:
        raise bad from None
    if not all(math.isfinite(n) for n in numbers):
        raise bad
    if not rest and numbers[0].is_integer():
        return parse_length(int(numbers[0]), minimum)
    if kind in ("exponential", "exp") and len(numbers) in (1, 3):
        bounds = {"min": int(numbers[1]), "max": int(numbers[2])} if len(numbers) == 3 else {}
        return parse_length({"dist": "exponential", "mean": numbers[0], **bounds}, minimum)
    if kind == "uniform" and len(numbers) == 2 and all(n.is_integer() for n in numbers):
        return parse_length({"dist": "uniform", "low": int(numbers[0]), "high": int(numbers[1])}, minimum)
    raise bad


def update_schedules(updates: list[dict[str, Any]], last_s: float) -> list[Schedule]:
    """One Schedule per class from the seeds' update schedule (``[{"time": s, "request_rates": [RPM per class,
    priority order], ...}]``, times increasing from 0): each class's rate holds from one update to the next, the
    last for ``last_s`` seconds. ValueError naming the field on a malformed schedule."""
    if not updates or not isinstance(updates, list):
        raise ValueError("updates: expected a non-empty list")
    times = [float(u.get("time", 0.0)) for u in updates]
    if times[0] != 0 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError(f"updates: times must start at 0 and increase, got {times}")
    counts = {len(u.get("request_rates") or []) for u in updates}
    if len(counts) != 1 or 0 in counts:
        raise ValueError("updates: every update needs request_rates for the same classes")
    ends = [*times[1:], times[-1] + last_s]
    schedules = []
    for c in range(counts.pop()):
        phases = []
        for u, start, end in zip(updates, times, ends, strict=True):
            rate = float(u["request_rates"][c]) / 60.0
            if not (rate >= 0 and math.isfinite(rate)):
                raise ValueError(f"updates: request_rates[{c}] must be a finite number >= 0, got "
                                 f"{u['request_rates'][c]!r}")
            phases.append(Phase(end - start, rate, rate))
        schedules.append(Schedule(tuple(phases)))
    return schedules
