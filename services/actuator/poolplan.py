"""The pool's actuation plan (docs/contract.md s10): from one answer of the qos command, the replicas of each
Deployment of the pool and the routing table to publish on them. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.core import routing
from services.core.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """What to write: replicas per Deployment and the pool's routing table."""

    namespace: str
    replicas: Mapping[str, int]
    table: routing.RoutingTable


def plan_from_answer(namespace: str, pool: str, answer: Mapping[str, Any], deployments: Mapping[str, str]
                     ) -> PoolPlan:
    """The PoolPlan of one update of the qos command's JSON (``replicas`` by instance type, ``rates_rpm`` and
    ``instance_types`` per instance, ``classes``); ``deployments`` maps an instance type to its Deployment
    (default: the same name). InvalidInputError naming the field on an answer that is not one."""
    try:
        classes = [str(c) for c in answer["classes"]]
        types = [str(t) for t in answer["instance_types"]]
        rates = [[float(r) for r in inst] for inst in answer["rates_rpm"]]
        replicas = {deployments.get(str(t), str(t)): int(n) for t, n in answer["replicas"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InvalidInputError(f"--answer: not an update of `qos --json`: {err}") from None
    if len(types) != len(rates) or any(len(r) != len(classes) for r in rates):
        raise InvalidInputError("--answer: instance_types and rates_rpm must list the same instances, one rate per "
                                "class")
    if any(n < 0 for n in replicas.values()):
        raise InvalidInputError(f"--answer: replicas must be >= 0, got {replicas}")
    by_deployment: dict[str, list[float]] = {d: [0.0] * len(classes) for d in replicas}
    for t, inst in zip(types, rates, strict=True):
        total = by_deployment.setdefault(deployments.get(t, t), [0.0] * len(classes))
        for c, r in enumerate(inst):
            total[c] += r
    return PoolPlan(namespace, replicas, routing.table_from_answer(pool, classes, by_deployment))


