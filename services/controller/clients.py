"""gRPC clients of the collector, optimizer and actuator, as the cycle's CycleClients; every call has a deadline.

Failures surface as grpc.RpcError (the cycle names the service and the status code). Protos stop here: each
answer is decoded once (services.runtime.convert) for the cycle, and what the services answered is forwarded
as received: the collector's servers to the optimizer, its managed servers and the optimizer's allocations
to the actuator. Only the static data, which the controller reads itself, is encoded here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import grpc
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
from services.runtime import convert

SERVICES = {
    "collector": collector_pb2.DESCRIPTOR.services_by_name["CollectorService"].full_name,
    "optimizer": optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name,
    "actuator": actuator_pb2.DESCRIPTOR.services_by_name["ActuatorService"].full_name,
}


class ServiceClients:
    """Channels to the three services, with one deadline (seconds) for every call."""

    def __init__(self, addresses: Mapping[str, str], deadline_s: float, namespaces: tuple[str, ...] = ()) -> None:
        self._channels = {name: grpc.insecure_channel(addresses[name]) for name in SERVICES}
        self._deadline_s = deadline_s
        self._namespaces = namespaces
        self._collector = collector_pb2_grpc.CollectorServiceStub(self._channels["collector"])
        self._optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self._channels["optimizer"])
        self._actuator = actuator_pb2_grpc.ActuatorServiceStub(self._channels["actuator"])

    def collect(self, window: str = "", forecast: bool = True) -> Reply[m.Collection]:
        """Collector.Collect (rates over ``window``, "" = the collector's; ``forecast`` False: measure only) ->
        the Collection, decoded once, and the answer. Raises grpc.RpcError, or InvalidInputError when the answer
        is malformed."""
        request = collector_pb2.CollectRequest(namespaces=self._namespaces, window=window, no_forecast=not forecast)
        reply = self._collector.Collect(request, timeout=self._deadline_s)
        return Reply(convert.collection_from_proto(reply), reply)

    def optimize(self, system: m.SystemData, collected: Reply[m.Collection]) -> Reply[Solved]:
        """Optimizer.Optimize over ``system`` whose servers are the collector's, forwarded as received ->
        (Solution, stats as a dict) and the answer. Raises grpc.RpcError."""
        request = convert.system_to_proto(replace(system, servers=()))
        request.servers.extend(r.server for r in collected.wire.managed)
        reply = self._optimizer.Optimize(optimizer_pb2.OptimizeRequest(system=request), timeout=self._deadline_s)
        stats = MessageToDict(reply.stats, preserving_proto_field_name=True)
        return Reply(Solved(convert.solution_from_proto(reply), stats, convert.predictions_from_proto(
            list(reply.current))), reply)

    def actuate(self, solved: Reply[Solved], collected: Reply[m.Collection],
                dry_run: bool, notices: Sequence[m.Notice] = ()) -> list[m.ActuationResult]:
        """Actuator.Actuate with the optimizer's allocations and the collector's managed servers as received,
        and the Events (``notices``) to write on their Deployments. Raises grpc.RpcError, or InvalidInputError
        when the answer is malformed."""
        request = actuator_pb2.ActuateRequest(allocations=solved.wire.allocations, managed=collected.wire.managed,
                                              dry_run=dry_run, notices=convert.notices_to_proto(list(notices)))
        reply = self._actuator.Actuate(request, timeout=self._deadline_s)
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
