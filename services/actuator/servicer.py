"""ActuatorService over gRPC: proto -> model (services.runtime.convert), KubeActuator, metrics, proto back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import grpc

from proto import actuator_pb2, actuator_pb2_grpc
from services.actuator.kube import KubeActuator
from services.actuator.metrics import ActuatorMetrics
from services.runtime import convert
from services.runtime.logs import get_logger

SERVICE_NAME = actuator_pb2.DESCRIPTOR.services_by_name["ActuatorService"].full_name
_log = get_logger("actuator")


class ActuatorServicer(actuator_pb2_grpc.ActuatorServiceServicer):
    """Actuate: apply allocations to the Deployments of the ``managed`` servers; ``force_dry_run`` (the INFERNO_DRY_RUN
    setting) makes every call a dry run whatever the request says."""

    def __init__(self, actuator: KubeActuator, metrics: ActuatorMetrics, *, force_dry_run: bool = False) -> None:
        self._actuator = actuator
        self._metrics = metrics
        self._force_dry_run = force_dry_run

    def Actuate(self, request: actuator_pb2.ActuateRequest,  # noqa: N802 - gRPC method name
                context: grpc.ServicerContext) -> actuator_pb2.ActuateResponse:
        """One result per managed server, sorted by (namespace, Deployment, server). Bad input -> INVALID_ARGUMENT."""
        allocations = convert.allocations_from_proto(list(request.allocations))
        managed = convert.managed_servers_from_proto(list(request.managed))
        dry_run = request.dry_run or self._force_dry_run
        notices = convert.notices_from_proto(list(request.notices))
        changes = self._actuator.actuate(managed, allocations, dry_run, proceed=context.is_active, notices=notices)
        self._metrics.record(changes, dry_run)
        counts = Counter(c.outcome.value for c in changes)
        _log.info("actuation_completed", dry_run=dry_run, deployments=len(changes), **counts)
        return actuator_pb2.ActuateResponse(results=[convert.actuation_result_to_proto(c.result(dry_run))
                                                     for c in changes])


def register(servicer: ActuatorServicer) -> Callable[[grpc.Server], None]:
    """The ``register`` callable for services.runtime.grpcserve.build_server / serve."""
    return lambda server: actuator_pb2_grpc.add_ActuatorServiceServicer_to_server(servicer, server)
