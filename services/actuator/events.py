"""Kubernetes Events on the managed Deployments: why each one was scaled or held (docs/contract.md s5).

``event_for`` (pure) says which Event a planned change deserves: ``ScaledUp`` / ``ScaledDown`` (Normal) for
every scale written, ``ScalingHeld`` (Normal) when the replicas stay away from what the allocation wants
(stabilization window, load not measured, per-cycle limit, another autoscaler owns them), ``BatchLimited``
(Warning) when the batch was capped at the pod's --max-num-seqs, and none for an unchanged Deployment.
``EventRecorder`` writes them (core/v1 Events, ``create`` only, as kubectl describe shows them) and writes a
hold or a warning again only when its message changes, so an unchanged hold does not add an Event every
cycle. A failed write is logged and never fails the actuation.
"""

from __future__ import annotations

import datetime
import socket
import threading
from collections.abc import Callable

from kubernetes import client

from services.actuator.plan import BATCH_LIMITED, Change
from services.core.model import ActuationOutcome, KubeRef
from services.runtime.logs import get_logger

COMPONENT = "inferno-actuator"
_log = get_logger("actuator")

Notice = tuple[str, str, str]
"""(type, reason, message) of one Event."""


def event_for(change: Change) -> list[Notice]:
    """The Events a planned (and, when it changed anything, written) change deserves, in order."""
    notices: list[Notice] = []
    if change.outcome is ActuationOutcome.FAILED:
        return notices
    if change.scales and change.outcome is ActuationOutcome.CHANGED:
        reason = "ScaledUp" if change.replicas_to > change.replicas_from else "ScaledDown"
        notices.append(("Normal", reason, change.reason))
    elif change.desired_replicas is not None and change.replicas_to != change.desired_replicas:
        notices.append(("Normal", "ScalingHeld", f"wanted {change.desired_replicas} replicas, kept "
                                                 f"{change.replicas_to}: {change.reason}"))
    capped = next((n for n in change.reason.split("; ") if BATCH_LIMITED in n), "")
    if capped:
        notices.append(("Warning", "BatchLimited", capped))
    return notices


class EventRecorder:
    """Creates Events through the official client; one instance serves many calls (thread-safe)."""

    def __init__(self, api_client: client.ApiClient, *, timeout_s: float = 10.0,
                 now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self._core = client.CoreV1Api(api_client)
        self._timeout_s = timeout_s
        self._now = now
        self._instance = socket.gethostname()
        self._last: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def record(self, change: Change) -> list[Notice]:
        """Write the Events of ``change`` on its Deployment; returns those written."""
        written = []
        for notice in event_for(change):
            kind, reason, message = notice
            key = (change.ref.namespace, change.ref.name, reason)
            with self._lock:
                repeated = reason not in ("ScaledUp", "ScaledDown") and self._last.get(key) == message
                self._last[key] = message
            if not repeated and self.emit(change.ref, kind, reason, message):
                written.append(notice)
        return written

    def emit(self, ref: KubeRef, kind: str, reason: str, message: str) -> bool:
        """Create one Event on Deployment ``ref``; False (logged) when the API refused or failed."""
        stamp = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
                "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ref.namespace,
                                   "name": ref.name, **({"uid": ref.uid} if ref.uid else {})},
                "type": kind, "reason": reason, "message": message[:1024], "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT, "reportingInstance": self._instance}
        try:
            self._core.create_namespaced_event(ref.namespace, body, _preload_content=False,
                                               _request_timeout=self._timeout_s)
        except Exception as err:  # noqa: BLE001 - an Event never fails the actuation
            _log.warning("event_failed", namespace=ref.namespace, deployment=ref.name, reason=reason,
                         error=str(err)[:300])
            return False
        return True
