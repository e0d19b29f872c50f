"""The emulator's pool router: spreads each service class's requests over a pool's replicas by the routing
weights the actuator publishes on the pool's Deployments (annotation ``inferno.routing/weights``,
services/core/routing.py, docs/contract.md s10), the role of the seeds' multi-instance router and of a gateway's
inference extension.

It reads the annotations on every pick (re-parsed only when they changed), so a new answer of the optimizer
takes effect on the next request. A class goes to Deployment d with probability
rpm[c][d] / sum rpm[c], then round-robin over d's ready replicas; without weights for the class (no
annotation, class missing, all 0, or no ready replica where the weights point) it goes round-robin over every
ready replica of the pool. A malformed annotation is ignored (the last good table is kept) and counted.

Every routed request is counted per class in Prometheus, in the style of the Gateway API Inference Extension's
endpoint picker (docs/contract.md s10): the counter ``inference_objective_request_total`` with the labels
``objective`` (the class), ``priority`` (its request priority) and ``deployment`` (the Deployment of the
replica picked), in the router's own registry, served at ``/metrics`` by ``serve()``; the local cluster adds
the router to Prometheus' targets with the labels ``namespace`` and ``pool``, so per-class arrival rates are
``sum by (objective) (rate(inference_objective_request_total{namespace=.., pool=..}[w]))``.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server

from services.core import routing
from services.core.errors import InvalidInputError

ReadAnnotations = Callable[[], dict[str, str]]
"""The pool's Deployments' ``inferno.routing/weights`` values, by Deployment name (absent ones left out)."""
Endpoints = Callable[[str], Sequence[str]]

T = TypeVar("T")


REQUESTS_METRIC = "inference_objective_request"
"""The per-class request counter (exposed as ``inference_objective_request_total``)."""


class PoolRouter:
    """Routes requests of a pool's classes. ``deployments``: the pool's Deployments; ``endpoints(d)`` their
    ready replicas' base URLs; ``read_annotations()`` their routing annotations; ``classes`` the pool's classes
    in priority order (the priority counted for a class the routing table does not name: its position)."""

    def __init__(self, pool: str, deployments: Sequence[str], endpoints: Endpoints, read_annotations: ReadAnnotations,
                 seed: int = 0, classes: Sequence[str] = ()) -> None:
        self.pool = pool
        self.classes = list(classes)
        self.registry = CollectorRegistry()
        self.requests = Counter(REQUESTS_METRIC, "Requests routed, per service class (objective) and Deployment",
                                ["objective", "priority", "deployment"], registry=self.registry)
        self._server: WSGIServer | None = None
        self.port = 0
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

    def _next(self, key: str, choices: Sequence[T]) -> T:
        turn = self._turns.setdefault(key, itertools.count())
        return choices[next(turn) % len(choices)]

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
                self._count(service_class, route.priority, deployment)
                return url
        everything = sorted((url, d) for d, urls in ready.items() for url in urls)
        if not everything:
            return None
        with self._lock:
            url, owner = self._next("*", everything)
        self._count(service_class, route.priority if route is not None else self._position(service_class), owner)
        return url

    def _position(self, service_class: str) -> int | None:
        return self.classes.index(service_class) if service_class in self.classes else None

    def _count(self, service_class: str, priority: int | None, deployment: str) -> None:
        self.requests.labels(service_class, "" if priority is None else str(priority), deployment).inc()

    def serve(self, port: int = 0) -> int:
        """Serve the router's metrics at ``http://127.0.0.1:PORT/metrics`` (a free port when 0); the port."""
        self._server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.port = self._server.server_port
        return self.port

    def stop(self) -> None:
        """Stop serving metrics."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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
