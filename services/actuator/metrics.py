"""Desired-state metrics of the actuator on an HTTP port, so HPA or KEDA users can act on our decisions.

Gauges, labelled namespace, deployment, server, accelerator, hold the last Actuate call's snapshot (cleared
and set again each call): ``inferno_desired_replicas`` (and the WVA-compatible ``wva_desired_replicas``),
``inferno_current_replicas`` (spec replicas after the call) and ``inferno_desired_ratio`` (desired / current,
current counted as at least 1). ``inferno_actuations_total{outcome, dry_run}`` counts results. Each instance
has its own CollectorRegistry, so tests can run several.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from services.actuator.plan import Change
from services.common.model import ActuationOutcome

LABELS = ("namespace", "deployment", "server", "accelerator")


class ActuatorMetrics:
    """The actuator's gauges and counters in a dedicated registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self.desired = Gauge("inferno_desired_replicas", "Replicas the optimizer wants (after min replicas)",
                             LABELS, registry=self.registry)
        self.wva_desired = Gauge("wva_desired_replicas", "Desired replicas (WVA-compatible name)", LABELS,
                                 registry=self.registry)
        self.current = Gauge("inferno_current_replicas", "Spec replicas after the last actuation", LABELS,
                             registry=self.registry)
        self.ratio = Gauge("inferno_desired_ratio", "Desired / current replicas (current at least 1)", LABELS,
                           registry=self.registry)
        self.actions = Counter("inferno_actuations", "Actuation results by outcome", ("outcome", "dry_run"),
                               registry=self.registry)
        for outcome in ActuationOutcome:
            for dry_run in ("false", "true"):
                self.actions.labels(outcome.value, dry_run)

    def record(self, changes: Iterable[Change], dry_run: bool) -> None:
        """Replace the gauges with this call's snapshot and count each change's outcome.

        Deployments without a desired figure (absent from the solution, vanished) get no gauges.
        """
        with self._lock:
            for gauge in (self.desired, self.wva_desired, self.current, self.ratio):
                gauge.clear()
            for change in changes:
                self.actions.labels(change.outcome.value, str(dry_run).lower()).inc()
                if change.desired_replicas is None:
                    continue
                applied = change.outcome is ActuationOutcome.CHANGED and not dry_run
                current = change.replicas_to if applied else change.replicas_from
                labels = (change.ref.namespace, change.ref.name, change.server_name, change.accelerator)
                self.desired.labels(*labels).set(change.desired_replicas)
                self.wva_desired.labels(*labels).set(change.desired_replicas)
                self.current.labels(*labels).set(current)
                self.ratio.labels(*labels).set(change.desired_replicas / max(current, 1))

    def serve(self, address: str, port: int) -> tuple[object, int]:
        """Serve /metrics on ``address``:``port`` (0 = any free port) in a daemon thread.

        Returns (the HTTP server, whose shutdown() stops it, and the bound port). Raises OSError if unbindable.
        """
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server, server.server_port
