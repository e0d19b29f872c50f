"""Desired-state metrics of the actuator on an HTTP port, so HPA or KEDA users can act on our decisions.

Gauges, labelled namespace, deployment, server, accelerator, hold the last Actuate call's snapshot (cleared
and set again each call; a Deployment the call did not reach keeps its previous figures):
``inferno_desired_replicas`` (and the WVA-compatible ``wva_desired_replicas``), ``inferno_current_replicas``
(spec replicas after the call) and ``inferno_desired_ratio`` (desired / current, current counted as at
least 1). ``inferno_actuations_total{outcome, dry_run}`` counts results. Each instance has its own
CollectorRegistry, so tests can run several.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from services.actuator.plan import NOT_ATTEMPTED, Change
from services.core.model import ActuationOutcome

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
        self._last: dict[tuple[str, str], tuple[tuple[str, ...], float, float]] = {}

    def record(self, changes: Iterable[Change], dry_run: bool) -> None:
        """Replace the gauges with this call's snapshot and count each change's outcome.

        Deployments without a desired figure (absent from the solution, vanished) get no gauges; one the call
        did not reach (NOT_ATTEMPTED) keeps the figures it had.
        """
        with self._lock:
            snapshot: dict[tuple[str, str], tuple[tuple[str, ...], float, float]] = {}
            for change in changes:
                self.actions.labels(change.outcome.value, str(dry_run).lower()).inc()
                key = (change.ref.namespace, change.ref.name)
                if change.reason == NOT_ATTEMPTED and key in self._last:
                    snapshot[key] = self._last[key]
                if change.desired_replicas is None:
                    continue
                applied = change.outcome is ActuationOutcome.CHANGED and not dry_run
                current = change.replicas_to if applied else change.replicas_from
                labels = (change.ref.namespace, change.ref.name, change.server_name, change.accelerator)
                snapshot[key] = (labels, float(change.desired_replicas), float(current))
            for gauge in (self.desired, self.wva_desired, self.current, self.ratio):
                gauge.clear()
            for labels, desired, current in snapshot.values():
                self.desired.labels(*labels).set(desired)
                self.wva_desired.labels(*labels).set(desired)
                self.current.labels(*labels).set(current)
                self.ratio.labels(*labels).set(desired / max(current, 1))
            self._last = snapshot

    def serve(self, address: str, port: int) -> tuple[object, int]:
        """Serve /metrics on ``address``:``port`` (0 = any free port) in a daemon thread.

        Returns (the HTTP server, whose shutdown() stops it, and the bound port). Raises OSError if unbindable.
        """
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server, server.server_port
