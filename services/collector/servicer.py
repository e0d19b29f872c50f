"""CollectorService over gRPC: the request's namespaces -> Collector -> CollectResponse (via convert.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import grpc

from proto import collector_pb2, collector_pb2_grpc
from services.collector.collect import Collector
from services.collector.promql import window_seconds
from services.core.errors import InvalidInputError
from services.core.redact import redact
from services.runtime import convert
from services.runtime.logs import get_logger

SERVICE_NAME = collector_pb2.DESCRIPTOR.services_by_name["CollectorService"].full_name
_log = get_logger("collector")


class CollectorServicer(collector_pb2_grpc.CollectorServiceServicer):
    """Collect: every managed server with its current allocation and observed load and latency.

    Kubernetes API failures answer UNAVAILABLE; metrics failures are warnings (labels are used).
    """

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def Collect(self, request: collector_pb2.CollectRequest,  # noqa: N802 - gRPC method name
                context: grpc.ServicerContext) -> collector_pb2.CollectResponse:
        """One snapshot of the managed servers in the requested namespaces (empty = the watched ones)."""
        if request.window:
            try:
                window_seconds(request.window)
            except ValueError as err:
                raise InvalidInputError(f"window: {err}") from None
        static = convert.system_from_proto(request.static, "static") if request.HasField("static") else None
        collection = self._collector.collect(list(request.namespaces), window=request.window,
                                             forecast=not request.no_forecast, static=static)
        # a warning may quote a URL with a password (INFERNO_PROMETHEUS_URL): never on the wire
        collection = replace(collection, warnings=tuple(redact(w) for w in collection.warnings))
        _log.info("collection_completed", servers=len(collection.managed), warnings=len(collection.warnings),
                  sources=dict(collection.sources), capacity_types=len(collection.capacity.counts))
        return convert.collection_to_proto(collection)


def register(servicer: CollectorServicer) -> Callable[[grpc.Server], None]:
    """The ``register`` callable for services.runtime.grpcserve.build_server / serve."""
    return lambda server: collector_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, server)
