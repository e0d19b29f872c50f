"""Server-side printing: a list or an object answered as a meta.k8s.io/v1 Table when the client asks for one.

kubectl get sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` and prints the Table's
columns, so the columns are the API server's: Deployments NAME, READY, UP-TO-DATE, AVAILABLE, AGE (wide:
CONTAINERS, IMAGES, SELECTOR); Pods NAME, READY, STATUS, RESTARTS, AGE (wide: IP, NODE); ReplicaSets NAME,
DESIRED, CURRENT, READY, AGE; Events LAST SEEN, TYPE, REASON, OBJECT, MESSAGE; HPAs NAME, REFERENCE,
MINPODS, MAXPODS, REPLICAS, AGE; anything else NAME, AGE. Rows carry the object's metadata
(PartialObjectMetadata), or the whole object with ``includeObject=Object``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from emulator.kuberesources import Resource

Cell = Callable[[dict], Any]


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a meta.k8s.io/v1 Table."""
    return any("as=Table" in part and "g=meta.k8s.io" in part and "v=v1" in part.replace("v=v1beta1", "")
               for part in accept.split(","))


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """A timestamp's age as kubectl prints it: 45s, 12m, 3h5m, 2d4h."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return "<invalid>"
    then = then if then.tzinfo else then.replace(tzinfo=UTC)
    seconds = max(int(((now or datetime.now(UTC)) - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def _pod_ready(obj: dict) -> str:
    containers = len(_spec(obj).get("containers") or []) or 1
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in _status(obj).get("conditions") or [])
    return f"{containers if ready else 0}/{containers}"


def _pod_status(obj: dict) -> str:
    return "Terminating" if obj["metadata"].get("deletionTimestamp") else _status(obj).get("phase", "Unknown")


def _containers(obj: dict) -> list[dict]:
    return ((_spec(obj).get("template") or {}).get("spec") or {}).get("containers") or []


def _selector(obj: dict) -> str:
    labels = (_spec(obj).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _involved(obj: dict) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _name(obj: dict) -> str:
    return obj["metadata"]["name"]


def _age(obj: dict) -> str:
    return age(obj["metadata"].get("creationTimestamp"))


COLUMNS: Mapping[str, tuple[tuple[str, str, int, Cell], ...]] = {
    "Deployment": (
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}"),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("availableReplicas", 0)),
        ("Age", "string", 0, _age),
        ("Containers", "string", 1, lambda o: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", 1, lambda o: ",".join(c.get("image", "") for c in _containers(o))),
        ("Selector", "string", 1, _selector)),
    "Pod": (
        ("Name", "string", 0, _name), ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, lambda o: "0"), ("Age", "string", 0, _age),
        ("IP", "string", 1, lambda o: _status(o).get("podIP", "<none>")),
        ("Node", "string", 1, lambda o: _spec(o).get("nodeName", "<none>"))),
    "ReplicaSet": (
        ("Name", "string", 0, _name), ("Desired", "integer", 0, lambda o: _spec(o).get("replicas", 0)),
        ("Current", "integer", 0, lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("readyReplicas", 0)), ("Age", "string", 0, _age)),
    "Event": (
        ("Last Seen", "string", 0, lambda o: age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp"))),
        ("Type", "string", 0, lambda o: o.get("type", "Normal")), ("Reason", "string", 0, lambda o: o.get("reason")),
        ("Object", "string", 0, _involved), ("Message", "string", 0, lambda o: o.get("message", "")),
        ("Source", "string", 1, lambda o: (o.get("source") or {}).get("component", "")),
        ("Count", "integer", 1, lambda o: o.get("count", 1)), ("Name", "string", 1, _name)),
    "HorizontalPodAutoscaler": (
        ("Name", "string", 0, _name),
        ("Reference", "string", 0, lambda o: "{kind}/{name}".format(**{"kind": "", "name": "",
                                                                          **(_spec(o).get("scaleTargetRef") or {})})),
        ("MinPods", "integer", 0, lambda o: _spec(o).get("minReplicas", 1)),
        ("MaxPods", "integer", 0, lambda o: _spec(o).get("maxReplicas", 0)),
        ("Replicas", "integer", 0, lambda o: _status(o).get("currentReplicas", 0)), ("Age", "string", 0, _age)),
}
DEFAULT = (("Name", "string", 0, _name), ("Age", "string", 0, _age))


def as_table(resource: Resource, body: dict, include_object: str = "Metadata") -> dict:
    """The Table of a list (``items``) or of one object, with the kind's columns (module docstring)."""
    columns = COLUMNS.get(resource.kind, DEFAULT)
    objects = body.get("items") if "items" in body else [body]
    rows = []
    for obj in objects:
        obj = {**obj, "metadata": obj.get("metadata") or {}}
        if include_object == "Object":
            carried = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        elif include_object == "None":
            carried = None
        else:
            carried = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": [cell(obj) for _, _, _, cell in columns], "object": carried})
    metadata = {key: value for key, value in (body.get("metadata") or {}).items()
                if key in ("resourceVersion", "continue") and "items" in body}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
                                   "description": "", "priority": priority} for name, kind, priority, _ in columns],
            "rows": rows}
