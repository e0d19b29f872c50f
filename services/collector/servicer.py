"""CollectorService over gRPC: the request's namespaces -> Collector -> CollectResponse (via convert.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from proto import collector_pb2, collector_pb2_grpc
from services.collector.collect import Collector, Snapshot
from services.runtime import convert
from services.runtime.grpcserve import grpc_method
from services.runtime.logs import get_logger

SERVICE_NAME = collector_pb2.DESCRIPTOR.services_by_name["CollectorService"].full_name
_log = get_logger("collector")


def response_from(snapshot: Snapshot) -> collector_pb2.CollectResponse:
    """Snapshot -> CollectResponse (servers and refs sorted by server name, warnings in order found)."""
    collection = snapshot.collection
    return collector_pb2.CollectResponse(
        servers=[convert.server_to_proto(s) for s in collection.servers],
        refs=[convert.server_ref_to_proto(r.server_name, r.ref, r.spec_replicas, r.ready_replicas)
              for r in collection.refs],
        warnings=list(collection.warnings),
        capacity=convert.capacity_to_proto(snapshot.capacity),
    )


class CollectorServicer(collector_pb2_grpc.CollectorServiceServicer):
    """Collect: every managed server with its current allocation and observed load and latency.

    Kubernetes API failures answer UNAVAILABLE; metrics failures are warnings (labels are used).
    """

    def __init__(self, collector: Collector, *, now: Callable[[], float] = time.monotonic) -> None:
        self._collector = collector
        self._now = now

    @grpc_method
    def Collect(self, request: collector_pb2.CollectRequest,  # noqa: N802 - gRPC method name
                context: grpc.ServicerContext) -> collector_pb2.CollectResponse:
        """One snapshot of the managed servers in the requested namespaces (empty = the watched ones)."""
        started = self._now()
        snapshot = self._collector.collect(list(request.namespaces))
        collection = snapshot.collection
        _log.info("collection_completed", servers=len(collection.servers), warnings=len(collection.warnings),
                  sources=dict(collection.sources), capacity_types=len(snapshot.capacity.counts),
                  duration_ms=round((self._now() - started) * 1000, 1))
        return response_from(snapshot)


def register(servicer: CollectorServicer) -> Callable[[grpc.Server], None]:
    """The ``register`` callable for services.runtime.grpcserve.build_server / serve."""
    return lambda server: collector_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, server)
