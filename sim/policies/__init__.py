"""Autoscaling policies the simulator runs side by side on the same arrivals (docs/simulator.md s2).

A policy is called every ``period_s`` of simulated time with a ClusterView (what it could observe then:
the Deployment's spec and ready replicas, its pods, and Prometheus) and answers the desired replica count,
or None to leave the Deployment as it is. The simulator clamps the answer to the scenario's min and max.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sim.prometheus import Prometheus
from sim.scenario import Scenario, ScenarioError


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod as the Kubernetes API shows it: name, Ready, being deleted (draining)."""

    name: str
    ready: bool
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a policy can observe at ``now_s``."""

    now_s: float
    spec_replicas: int
    pods: tuple[PodView, ...]
    prometheus: Prometheus

    @property
    def ready_replicas(self) -> int:
        """Ready pods that are not being deleted."""
        return sum(1 for p in self.pods if p.ready and not p.terminating)

    @property
    def pending_replicas(self) -> int:
        """Pods created but not yet Ready (Pending or starting)."""
        return sum(1 for p in self.pods if not p.ready and not p.terminating)


class Policy(Protocol):
    """An autoscaling policy."""

    name: str
    period_s: float

    def initial_replicas(self) -> int:
        """Replicas at t = 0 (Ready from the start)."""
        ...

    def decide(self, view: ClusterView) -> int | None:
        """Desired replicas now, or None to leave them."""
        ...


INFERNO_VARIANTS: dict[str, tuple[bool, bool]] = {
    "inferno-baseline": (False, False), "inferno-forecast": (True, False), "inferno-fastpath": (False, True),
    "inferno-forecast-fastpath": (True, True),
}
"""``inferno`` with issue 22's forecasting and fast path switched (forecast, fast path) regardless of the
production defaults (INFERNO_FORECAST, INFERNO_FAST_PATH), to show what each adds (docs/evaluation.md)."""


def build(name: str, scenario: Scenario) -> Policy:
    """The policy called ``name`` for ``scenario``; ScenarioError for an unknown name."""
    from sim.policies import baseline, hpa, inferno, wva

    factories: dict[str, Callable[[Scenario], Policy]] = {
        "inferno": inferno.InfernoPolicy, "hpa": hpa.HpaPolicy, "wva-v1": wva.WvaV1Policy,
        "static": baseline.StaticPolicy, "oracle": baseline.OraclePolicy, "causal": baseline.CausalPolicy,
    }
    factories.update({variant: (lambda s, v=variant, f=flags: inferno.InfernoPolicy(s, *f, name=v))
                      for variant, flags in INFERNO_VARIANTS.items()})
    if name not in factories:
        raise ScenarioError(f"--policies: unknown policy {name!r} (known: {', '.join(factories)})")
    return factories[name](scenario)
