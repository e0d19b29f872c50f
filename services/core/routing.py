"""The routing weights of a pool (docs/contract.md s10): what the actuator publishes on the pool's Deployments and
a router (the emulator's, or a gateway's adapter) reads.

Each Deployment of pool P carries the annotation ``inferno.routing/weights`` (the actuator patches it, with the
replicas, in one cycle), whose value is the table restricted to that Deployment::

    {"pool": "llama", "classes": [
        {"name": "Alan", "priority": 0, "rpm": {"llama-a100": 10.0}},
        {"name": "Noel", "priority": 1, "rpm": {"llama-a100": 14.0}}]}

``classes`` in priority order (``priority`` is the value requests of the class carry, vLLM's field: lower
first); ``rpm`` the arrival rate the optimizer planned for the class on the Deployment (X_ck of docs/model.md
s13). A router merges the pool's annotations into one table and sends a request of class c to Deployment d with
probability rpm[c][d] / sum_d rpm[c][d], spread evenly over d's ready replicas (X_ck / n_k each). A class
without weights (or all 0) goes to every ready replica of the pool alike. Pure: json only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.core.errors import InvalidInputError

POOL_LABEL = "inferno.server.pool"
"""The label declaring that a Deployment belongs to a pool (its value: the pool's name)."""
CLASSES_LABEL = "inferno.server.classes"
"""The label listing the classes a pool's Deployment serves, in priority order, dot-separated ("Alan.Noel")."""
SHARES_LABEL = "inferno.server.class-shares"
"""The fallback split of a pool Deployment's arrival rate over its classes when no router counts them:
dash-separated non-negative numbers in the classes' order ("40-60"); absent: an even split."""
ANNOTATION = "inferno.routing/weights"
"""The Deployment annotation carrying its part of the pool's routing table."""


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


def parse_shares(value: str, count: int) -> list[float]:
    """The shares of an ``inferno.server.class-shares`` value, normalised to sum 1; InvalidInputError unless it
    holds ``count`` finite non-negative numbers with a positive sum."""
    try:
        shares = [float(v) for v in value.split("-")]
    except ValueError:
        shares = []
    if len(shares) != count or not all(math.isfinite(v) and v >= 0 for v in shares) or sum(shares) <= 0:
        raise InvalidInputError(f"{SHARES_LABEL}: expected {count} dash-separated numbers >= 0 with a positive "
                                f"sum, got {value!r}")
    total = sum(shares)
    return [v / total for v in shares]


def parse_classes(value: str) -> list[str]:
    """The class names of an ``inferno.server.classes`` value, in priority order; InvalidInputError on an empty
    name or a repeated one."""
    names = value.split(".")
    if not value or any(not n for n in names) or len(set(names)) != len(names):
        raise InvalidInputError(f"{CLASSES_LABEL}: expected dot-separated distinct class names, got {value!r}")
    return names


def annotation_for(table: RoutingTable, deployment: str) -> str:
    """The ``inferno.routing/weights`` value of ``deployment``: ``table`` with only its rates."""
    return RoutingTable(table.pool, tuple(ClassRoute(c.name, c.priority, {deployment: c.rpm.get(deployment, 0.0)})
                                          for c in table.classes)).to_json()


def merge(pool: str, annotations: Mapping[str, str]) -> RoutingTable | None:
    """One table from the pool's Deployments' annotation values (by Deployment name); the class order and
    priorities of the first Deployment (by name) that names the class; a malformed value raises
    InvalidInputError naming the Deployment; None when no Deployment has one."""
    order: list[tuple[str, int]] = []
    rpm: dict[str, dict[str, float]] = {}
    for deployment in sorted(annotations):
        try:
            part = parse(annotations[deployment])
        except InvalidInputError as err:
            raise InvalidInputError(f"deployment {deployment}: {ANNOTATION}: {err}") from None
        for c in part.classes:
            if c.name not in rpm:
                order.append((c.name, c.priority))
                rpm[c.name] = {}
            rpm[c.name].update(c.rpm)
    if not order:
        return None
    return RoutingTable(pool, tuple(ClassRoute(n, p, rpm[n]) for n, p in sorted(order, key=lambda x: x[1])))


def parse(text: str) -> RoutingTable:
    """A RoutingTable from ``weights.json``; InvalidInputError naming the field on a malformed document."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{ANNOTATION}: not JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pool"), str) or not isinstance(doc.get("classes"), list):
        raise InvalidInputError(f"{ANNOTATION}: expected {{pool, classes: [...]}}, got {text[:200]!r}")
    classes = []
    for i, item in enumerate(doc["classes"]):
        where = f"{ANNOTATION}.classes[{i}]"
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
