"""What ``python -m emulator up`` prints while it runs: one line per change an operator wants to see.

Deployments scaled (spec.replicas) and their allocation labels changed, replicas becoming ready (with the
endpoint to send requests to) or removed, and every Event written to the API (the actuator's scale and
hold Events, for instance). ``describe`` turns one store write into its line (or None); ``ClusterLog``
subscribes to the store and prints them with the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from emulator.kubestore import KubeStore
from emulator.podtemplate import PORT_ANNOTATION

ALLOCATION = "inferno.server.allocation."


def _where(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _ready(pod: dict | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _endpoint(pod: dict) -> str:
    port = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    return f"http://127.0.0.1:{port}" if port else "(no endpoint)"


def _deployment_of(pod: dict) -> str:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or [{}]
    return owners[0].get("name", "?").rsplit("-", 1)[0]


def _deployment_line(obj: dict, previous: dict | None) -> str | None:
    if previous is None:
        return None
    parts = []
    before, after = (previous.get("spec") or {}).get("replicas"), (obj.get("spec") or {}).get("replicas")
    if before != after:
        parts.append(f"scaled {before} -> {after} replicas")
    old = (previous.get("metadata") or {}).get("labels") or {}
    new = (obj.get("metadata") or {}).get("labels") or {}
    for key in sorted(k for k in set(old) | set(new) if k.startswith(ALLOCATION) and old.get(k) != new.get(k)):
        parts.append(f"{key.removeprefix(ALLOCATION)} {old.get(key, '-')} -> {new.get(key, '-')}")
    return f"deployment {_where(obj)}: " + ", ".join(parts) if parts else None


def describe(event_type: str, api_version: str, plural: str, obj: dict, previous: dict | None) -> str | None:
    """The line for one write to the store, or None when it is not worth a line."""
    if (api_version, plural) == ("apps/v1", "deployments") and event_type == "MODIFIED":
        return _deployment_line(obj, previous)
    if (api_version, plural) == ("v1", "pods"):
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        pod = f"{namespace}/{_deployment_of(obj)} pod {obj['metadata']['name']}"
        if event_type == "MODIFIED" and _ready(obj) and not _ready(previous):
            return f"replica ready {pod}: {_endpoint(obj)}"
        if event_type == "DELETED":
            return f"replica removed {pod} ({_endpoint(obj)})"
    if (api_version, plural) == ("v1", "events") and event_type == "ADDED":
        involved = obj.get("involvedObject") or {}
        source = (obj.get("source") or {}).get("component", "")
        return (f"event {involved.get('namespace', '')}/{involved.get('name', '')} {obj.get('type', 'Normal')} "
                f"{obj.get('reason', '')}: {obj.get('message', '')}" + (f" (from {source})" if source else ""))
    return None


class ClusterLog:
    """Prints ``describe``'s lines for every later write to ``store`` through ``out``, with the wall time."""

    def __init__(self, store: KubeStore, out: Callable[[str], None],
                 clock: Callable[[], float] = time.time) -> None:
        self._out, self._clock = out, clock
        self._unsubscribe = store.subscribe(self._on_write, previous=True)

    def _on_write(self, event_type: str, api_version: str, plural: str, obj: dict, previous: dict | None) -> None:
        line = describe(event_type, api_version, plural, obj, previous)
        if line is not None:
            self._out(time.strftime("%H:%M:%S ", time.localtime(self._clock())) + line)

    def close(self) -> None:
        """Stop printing."""
        self._unsubscribe()
