"""gRPC clients of the collector, optimizer and actuator, as the cycle's CycleClients; every call has a deadline.

A failed call raises a domain error (services.core.errors): RefusedError when the service certainly did
nothing, NoAnswerError when it was reached and did not answer; every call carries the cycle id as metadata.
Protos stop here: each answer is decoded once (services.runtime.convert) for the cycle, and what the
services answered is forwarded as received: the collector's servers to the optimizer, its managed servers
and the optimizer's allocations to the actuator. Only the static data, which the controller reads itself, is
encoded here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import grpc
import structlog
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto import (
    actuator_pb2,
    actuator_pb2_grpc,
    collector_pb2,
    collector_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
)
from services.controller.cycle import Reply, Solved
from services.core import model as m
from services.core.errors import NoAnswerError, RefusedError, ServiceCallError
from services.runtime import convert
from services.runtime.grpcserve import CYCLE_ID_METADATA

SERVICES = {
    "collector": collector_pb2.DESCRIPTOR.services_by_name["CollectorService"].full_name,
    "optimizer": optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name,
    "actuator": actuator_pb2.DESCRIPTOR.services_by_name["ActuatorService"].full_name,
}


REFUSED_CODES = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNIMPLEMENTED", "PERMISSION_DENIED",
                           "UNAUTHENTICATED", "OUT_OF_RANGE", "NOT_FOUND", "ALREADY_EXISTS"})
"""Status codes with which a service refuses a call before acting on it."""
_NOT_CONNECTED = ("failed to connect", "connection refused", "name resolution", "dns resolution")
"""gRPC's own details of an UNAVAILABLE whose connection was never made (grpc gives no structured flag; a
connection lost mid-call is UNAVAILABLE too)."""


def classify(service: str, err: grpc.RpcError) -> ServiceCallError:
    """A failed call -> RefusedError (refused by status code, or never connected: certainly did nothing) or
    NoAnswerError (reached, no answer: may have acted), carrying the status code name and details."""
    code, details = err.code().name, err.details() or ""
    never_connected = code == "UNAVAILABLE" and any(f in details.lower() for f in _NOT_CONNECTED)
    kind = RefusedError if code in REFUSED_CODES or never_connected else NoAnswerError
    return kind(service, code, details)


class ServiceClients:
    """Channels to the three services, with one deadline (seconds) for every call."""

    def __init__(self, addresses: Mapping[str, str], deadline_s: float, namespaces: tuple[str, ...] = ()) -> None:
        self._channels = {name: grpc.insecure_channel(addresses[name]) for name in SERVICES}
        self._deadline_s = deadline_s
        self._namespaces = namespaces
        self._collector = collector_pb2_grpc.CollectorServiceStub(self._channels["collector"])
        self._optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self._channels["optimizer"])
        self._actuator = actuator_pb2_grpc.ActuatorServiceStub(self._channels["actuator"])

    def _call(self, service: str, method: Callable[..., Any], request: Any) -> Any:
        """One call with the deadline and the cycle id (from the log context) as metadata; a failure raises
        the classified ServiceCallError."""
        cycle_id = structlog.contextvars.get_contextvars().get("cycle_id")
        metadata = ((CYCLE_ID_METADATA, str(cycle_id)),) if cycle_id is not None else ()
        try:
            return method(request, timeout=self._deadline_s, metadata=metadata)
        except grpc.RpcError as err:
            raise classify(service, err) from err

    def collect(self, static: m.SystemData | None = None, window: str = "", forecast: bool = True
                ) -> Reply[m.Collection]:
        """Collector.Collect with the ``static`` data the controller read (servers aside; None: the collector
        reads its own data files), rates over ``window`` ("" = the collector's; ``forecast`` False: measure
        only) -> the Collection, decoded once, and the answer. Raises ServiceCallError, or InvalidInputError when
        the answer is malformed."""
        request = collector_pb2.CollectRequest(
            namespaces=self._namespaces, window=window, no_forecast=not forecast,
            static=None if static is None else convert.system_to_proto(replace(static, servers=())))
        reply = self._call("collector", self._collector.Collect, request)
        return Reply(convert.collection_from_proto(reply), reply)

    def optimize(self, system: m.SystemData, collected: Reply[m.Collection]) -> Reply[Solved]:
        """Optimizer.Optimize over ``system`` whose servers are the collector's, forwarded as received ->
        (Solution, stats as a dict) and the answer. Raises ServiceCallError."""
        request = convert.system_to_proto(replace(system, servers=()))
        request.servers.extend(r.server for r in collected.wire.managed)
        reply = self._call("optimizer", self._optimizer.Optimize, optimizer_pb2.OptimizeRequest(system=request))
        stats = MessageToDict(reply.stats, preserving_proto_field_name=True)
        return Reply(Solved(convert.solution_from_proto(reply), stats, convert.predictions_from_proto(
            list(reply.current))), reply)

    def actuate(self, solved: Reply[Solved], collected: Reply[m.Collection],
                dry_run: bool, notices: Sequence[m.Notice] = ()) -> list[m.ActuationResult]:
        """Actuator.Actuate with the optimizer's allocations and the collector's managed servers as received,
        and the Events (``notices``) to write on their Deployments. Raises ServiceCallError, or InvalidInputError
        when the answer is malformed."""
        request = actuator_pb2.ActuateRequest(allocations=solved.wire.allocations, managed=collected.wire.managed,
                                              dry_run=dry_run, notices=convert.notices_to_proto(list(notices)))
        reply = self._call("actuator", self._actuator.Actuate, request)
        return [convert.actuation_result_from_proto(r) for r in reply.results]

    def health(self, timeout_s: float = 2.0) -> dict[str, str]:
        """Each service's standard health status name (SERVING, NOT_SERVING, or the gRPC error code)."""
        statuses = {}
        for name, service in SERVICES.items():
            stub = health_pb2_grpc.HealthStub(self._channels[name])
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
                statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as err:
                statuses[name] = err.code().name
        return statuses

    def close(self) -> None:
        """Close the channels."""
        for channel in self._channels.values():
            channel.close()
