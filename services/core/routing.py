"""The routing weights of a pool (docs/contract.md s10): what the actuator publishes in a ConfigMap and a
router (the emulator's, or a gateway's adapter) reads.

ConfigMap ``inferno-routing-<pool>`` in the pool's namespace, labelled ``inferno.routing/pool=<pool>``, key
``weights.json``::

    {"pool": "llama", "classes": [
        {"name": "Alan", "priority": 0, "rpm": {"llama-a100": 10.0, "llama-h100": 0.0}},
        {"name": "Noel", "priority": 1, "rpm": {"llama-a100": 14.0}}]}

``classes`` in priority order (``priority`` is the value requests of the class carry, vLLM's field: lower
first); ``rpm`` the arrival rate the optimizer planned for the class on each Deployment of the pool (X_ck of
docs/model.md s13). A router sends a request of class c to Deployment d with probability rpm[c][d] / sum_d
rpm[c][d], and spreads it evenly over d's ready replicas (X_ck / n_k each). A class without weights (or all 0)
goes to every ready replica of the pool alike. Pure: json only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.core.errors import InvalidInputError

CONFIGMAP_PREFIX = "inferno-routing-"
POOL_LABEL = "inferno.routing/pool"
DATA_KEY = "weights.json"


@dataclass(frozen=True, slots=True)
class ClassRoute:
    """One class's routing: its request priority and planned rate per Deployment (RPM)."""

    name: str
    priority: int
    rpm: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """A pool's routing weights, classes in priority order."""

    pool: str
    classes: tuple[ClassRoute, ...]

    def of(self, service_class: str) -> ClassRoute | None:
        """The route of ``service_class`` or None."""
        return next((c for c in self.classes if c.name == service_class), None)

    def to_json(self) -> str:
        """The ``weights.json`` text (keys sorted: the same table gives the same bytes)."""
        return json.dumps({"pool": self.pool, "classes": [
            {"name": c.name, "priority": c.priority, "rpm": dict(sorted(c.rpm.items()))} for c in self.classes]},
            sort_keys=True)


def configmap_name(pool: str) -> str:
    """``inferno-routing-<pool>``."""
    return CONFIGMAP_PREFIX + pool


def configmap(namespace: str, table: RoutingTable) -> dict:
    """The ConfigMap object carrying ``table``."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap_name(table.pool), "namespace": namespace,
                         "labels": {POOL_LABEL: table.pool}},
            "data": {DATA_KEY: table.to_json()}}


def parse(text: str) -> RoutingTable:
    """A RoutingTable from ``weights.json``; InvalidInputError naming the field on a malformed document."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{DATA_KEY}: not JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pool"), str) or not isinstance(doc.get("classes"), list):
        raise InvalidInputError(f"{DATA_KEY}: expected {{pool, classes: [...]}}, got {text[:200]!r}")
    classes = []
    for i, item in enumerate(doc["classes"]):
        where = f"{DATA_KEY}.classes[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInputError(f"{where}: expected an object with a name, got {item!r}")
        priority = item.get("priority", i)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidInputError(f"{where}.priority: expected an integer, got {priority!r}")
        rpm = item.get("rpm") or {}
        if not isinstance(rpm, dict) or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0
                for v in rpm.values()):
            raise InvalidInputError(f"{where}.rpm: expected {{deployment: rate >= 0}}, got {rpm!r}")
        classes.append(ClassRoute(item["name"], priority, {str(k): float(v) for k, v in rpm.items()}))
    return RoutingTable(doc["pool"], tuple(classes))


def table_from_answer(pool: str, class_names: Sequence[str], rpm_by_deployment: Mapping[str, Sequence[float]]
                      ) -> RoutingTable:
    """The table for an optimizer answer: ``rpm_by_deployment[d][c]`` the rate of class c (priority order) on
    Deployment d (all its replicas together); class c gets priority c."""
    return RoutingTable(pool, tuple(
        ClassRoute(name, c, {d: float(rates[c]) for d, rates in rpm_by_deployment.items()})
        for c, name in enumerate(class_names)))
