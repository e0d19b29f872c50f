"""The two reference policies: ``oracle`` (sizes ahead with perfect knowledge of the load) and ``static``.

oracle: at every control period it knows the offered rate for the next start-up delay plus one period and
sets the replicas the optimizer's model allocates for the highest rate in [now, now + startup_s + period_s]
(pods it creates now are Ready by now + startup_s; pods it removes now stop serving now, so it keeps them while
the load of the coming window needs them). It starts with
the need of [0, startup_s + period_s] Ready. It is the lower bound on GPU-hours for a reactive policy that
meets the SLO, as far as the model is right (docs/simulator.md s2).
static: a fixed count, Ready from the start, never changed: ``policies.static.replicas`` in the scenario, or
the oracle's peak need over the whole schedule.
"""

from __future__ import annotations

from emulator.loadshape import Schedule
from sim.policies import ClusterView
from sim.scenario import Scenario
from sim.system import sizer

_SAMPLE_S = 5.0


def _peak_rate(schedule: Schedule, start_s: float, end_s: float) -> float:
    """The highest rate of ``schedule`` in [start_s, end_s] (sampled every 5 s and at phase edges)."""
    points = [start_s, end_s]
    t = start_s
    while t < end_s:
        points.append(t)
        t += _SAMPLE_S
    edge = 0.0
    for phase in schedule.phases:
        for point in (edge, edge + phase.duration_s - 1e-6):
            if start_s <= point <= end_s:
                points.append(point)
        edge += phase.duration_s
    return max(schedule.rate_at(p) for p in points)


class OraclePolicy:
    """Knows the load ``startup_s`` ahead; sizes it with the optimizer's model."""

    name = "oracle"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.period_s = scenario.control_period_s
        self._size = sizer(scenario)

    def need(self, start_s: float, end_s: float) -> int:
        """Replicas the model allocates for the highest rate in [start_s, end_s]."""
        return self._size(_peak_rate(self.scenario.load.schedule, start_s, end_s))

    def initial_replicas(self) -> int:
        """The need of the first start-up delay plus one period."""
        return self.need(0.0, self.scenario.cluster.startup_s + self.period_s)

    def decide(self, view: ClusterView) -> int:
        """The need from now until pods created now have served one period."""
        return self.need(view.now_s, view.now_s + self.scenario.cluster.startup_s + self.period_s)


class StaticPolicy:
    """A fixed replica count for the whole run."""

    name = "static"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.period_s = scenario.control_period_s
        configured = scenario.policy_settings("static").get("replicas")
        self.replicas = int(configured) if configured else OraclePolicy(scenario).need(0.0, scenario.duration_s)

    def initial_replicas(self) -> int:
        """The fixed count."""
        return self.replicas

    def decide(self, view: ClusterView) -> int | None:
        """Never changes anything."""
        return None
