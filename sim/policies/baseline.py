"""The two reference policies: ``oracle`` (sizes ahead with perfect knowledge of the load) and ``static``.

oracle: at every control period it knows the offered rate for the next start-up delay plus one period and
sets the replicas the optimizer's model allocates for the highest rate in [now, now + startup_s + period_s]
(pods it creates now are Ready by now + startup_s; pods it removes now stop serving now, so it keeps them while
the load of the coming window needs them). It starts with
the need of [0, startup_s + period_s] Ready. It is the lower bound on GPU-hours for a reactive policy that
meets the SLO, as far as the model is right (docs/simulator.md s2).
static: a fixed count, Ready from the start, never changed: ``policies.static.replicas`` in the scenario, or
the oracle's peak need over the whole schedule.
causal: the oracle without foreknowledge of unannounced rises (sim/causal.py: a jump up of the rate at a phase
edge that needs more replicas). Its lookahead stops at the next such rise; when one happens it asks for the
scenario's maximum replicas until one start-up delay plus CAUSAL_DRAIN_S after it (the backlog drains as fast as
the cluster allows), then follows the oracle again. Its SLO attainment is the most a policy that holds the
oracle's replicas before a rise it cannot see coming reaches: the requests it misses are those the start-up
delay makes unavoidable (its GPU-hours are no reference).
"""

from __future__ import annotations

from emulator.loadshape import Schedule
from sim.causal import rises
from sim.policies import ClusterView
from sim.scenario import Scenario
from sim.system import sizer

_SAMPLE_S = 5.0
CAUSAL_PERIOD_S = 5.0
"""How often ``causal`` decides (s): at the oracle's sampling of the schedule."""
CAUSAL_DRAIN_S = 60.0
"""How long ``causal`` keeps the maximum replicas after those asked for at a rise are Ready (s)."""


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


class CausalPolicy:
    """The oracle without foreknowledge of unannounced rises (module docstring)."""

    name = "causal"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.period_s = CAUSAL_PERIOD_S
        self._oracle = OraclePolicy(scenario)
        self._rises = [t for t, _, _ in rises(scenario.load.schedule, self._oracle._size)]
        self._burst_until_s = -1.0

    def _horizon(self, now_s: float) -> float:
        """The end of the oracle's lookahead, cut at the next unannounced rise."""
        end = now_s + self.scenario.cluster.startup_s + self.scenario.control_period_s
        return min([end, *(t - 1e-6 for t in self._rises if now_s < t <= end)])

    def initial_replicas(self) -> int:
        """The oracle's initial need, up to the first unannounced rise."""
        return self._oracle.need(0.0, self._horizon(0.0))

    def decide(self, view: ClusterView) -> int:
        """The maximum after a rise (until it is served), else the oracle's need up to the next rise."""
        now = view.now_s
        if any(now - self.period_s < t <= now for t in self._rises):
            self._burst_until_s = now + self.scenario.cluster.startup_s + CAUSAL_DRAIN_S
        if now < self._burst_until_s:
            return self.scenario.cluster.max_replicas
        return self._oracle.need(now, self._horizon(now))


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
