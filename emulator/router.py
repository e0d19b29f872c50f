"""The emulator's pool router: spreads each service class's requests over a pool's replicas by the routing
weights the actuator publishes on the pool's Deployments (annotation ``inferno.routing/weights``,
services/core/routing.py, docs/contract.md s10), the role of the seeds' multi-instance router and of a gateway's
inference extension.

It reads the annotations on every pick (re-parsed only when they changed), so a new answer of the optimizer
takes effect on the next request. A class goes to Deployment d with probability
rpm[c][d] / sum rpm[c], then round-robin over d's ready replicas; without weights for the class (no
annotation, class missing, all 0, or no ready replica where the weights point) it goes round-robin over every
ready replica of the pool. A malformed annotation is ignored (the last good table is kept) and counted.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence

from services.core import routing
from services.core.errors import InvalidInputError

ReadAnnotations = Callable[[], dict[str, str]]
"""The pool's Deployments' ``inferno.routing/weights`` values, by Deployment name (absent ones left out)."""
Endpoints = Callable[[str], Sequence[str]]


class PoolRouter:
    """Routes requests of a pool's classes. ``deployments``: the pool's Deployments; ``endpoints(d)`` their
    ready replicas' base URLs; ``read_annotations()`` their routing annotations."""

    def __init__(self, pool: str, deployments: Sequence[str], endpoints: Endpoints, read_annotations: ReadAnnotations,
                 seed: int = 0) -> None:
        self.pool = pool
        self.deployments = list(deployments)
        self._endpoints = endpoints
        self._read = read_annotations
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._seen: dict[str, str] | None = None
        self._table: routing.RoutingTable | None = None
        self._turns: dict[str, itertools.count] = {}
        self.malformed = 0
        self.picks: dict[tuple[str, str], int] = {}

    def table(self) -> routing.RoutingTable | None:
        """The current routing table (re-merged when the annotations changed), or None."""
        notes = self._read()
        with self._lock:
            if notes != self._seen:
                self._seen = notes
                try:
                    self._table = routing.merge(self.pool, notes)
                except InvalidInputError:
                    self.malformed += 1
            return self._table

    def _next(self, key: str, urls: Sequence[str]) -> str:
        turn = self._turns.setdefault(key, itertools.count())
        return urls[next(turn) % len(urls)]

    def pick(self, service_class: str) -> str | None:
        """A ready replica's base URL for a request of ``service_class``; None when the pool has none."""
        table = self.table()
        route = table.of(service_class) if table is not None else None
        ready = {d: list(self._endpoints(d)) for d in self.deployments}
        if route is not None:
            weights = [(d, w) for d, w in route.rpm.items() if w > 0 and ready.get(d)]
            total = sum(w for _, w in weights)
            if total > 0:
                with self._lock:
                    draw = self._rng.random() * total
                    deployment = weights[-1][0]
                    for name, weight in weights:
                        draw -= weight
                        if draw < 0:
                            deployment = name
                            break
                    url = self._next(deployment, ready[deployment])
                    self.picks[service_class, deployment] = self.picks.get((service_class, deployment), 0) + 1
                return url
        everything = sorted(url for urls in ready.values() for url in urls)
        if not everything:
            return None
        with self._lock:
            return self._next("*", everything)

    def priority(self, service_class: str, default: int = 0) -> int:
        """The request priority of ``service_class`` in the current table (``default`` without one)."""
        table = self.table()
        route = table.of(service_class) if table is not None else None
        return route.priority if route is not None else default

    def endpoints_for(self, service_class: str) -> Callable[[], list[str]]:
        """A load generator's Target endpoints callable: the one replica this router picks per request."""
        def pick() -> list[str]:
            url = self.pick(service_class)
            return [url] if url else []
        return pick
