"""Seeded arrivals: a non-homogeneous Poisson process following a schedule, with token lengths per request.

Every phase of the schedule is sampled by thinning (Lewis and Shedler 1979): candidate times at the phase's
peak rate, each kept with probability rate(t) / peak, which is exact for constant and linear phases alike.
The same (schedule, lengths, seed) always gives the same arrivals, so all policies see the same traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emulator.loadshape import Length, Schedule


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request: arrival time (s from the start), prompt and output tokens."""

    at_s: float
    prompt_tokens: int
    output_tokens: int


def generate(schedule: Schedule, prompt: Length, output: Length, seed: int) -> tuple[Arrival, ...]:
    """All arrivals of ``schedule`` in time order, lengths drawn from ``prompt`` / ``output``.

    Times come from one random stream and lengths from another, so that changing a length distribution does
    not move the arrival times.
    """
    times_rng = random.Random(f"arrivals/{seed}")
    lengths_rng = random.Random(f"lengths/{seed}")
    times: list[float] = []
    start = 0.0
    for phase in schedule.phases:
        peak = max(phase.rate_rps, phase.to_rps)
        t = 0.0
        while peak > 0:
            t += times_rng.expovariate(peak)
            if t >= phase.duration_s:
                break
            if times_rng.random() * peak <= phase.rate_at(t):
                times.append(start + t)
        start += phase.duration_s
    return tuple(Arrival(t, prompt.sample(lengths_rng), output.sample(lengths_rng)) for t in times)
