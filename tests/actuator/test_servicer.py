"""ActuatorService contract: a real gRPC server on 127.0.0.1:0 called through the stub."""

from __future__ import annotations

import grpc
import pytest

from proto import actuator_pb2, actuator_pb2_grpc, optimizer_pb2, types_pb2
from services.actuator import plan as p
from services.actuator.metrics import ActuatorMetrics
from services.actuator.servicer import SERVICE_NAME, ActuatorServicer, register
from services.core.model import KubeRef
from services.runtime.grpcserve import build_server


class PlanOnly:
    """Stands in for KubeActuator: plans against fixed states, writes nothing, remembers the call."""

    def __init__(self, states: dict[KubeRef, p.DeploymentState]) -> None:
        self.states = states
        self.calls: list[tuple] = []

    def actuate(self, managed, allocations, dry_run, proceed=lambda: True, notices=()):
        self.calls.append((managed, allocations, dry_run, proceed()))
        return p.plan(managed, self.states, allocations, p.PlanSettings())


@pytest.fixture
def served():
    fake = PlanOnly({KubeRef("llm", "granite"): p.DeploymentState(2), KubeRef("llm", "llama"): p.DeploymentState(3)})
    server, port, _ = build_server(register(ActuatorServicer(fake, ActuatorMetrics())), [SERVICE_NAME],
                                   "127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield actuator_pb2_grpc.ActuatorServiceStub(channel), fake
    channel.close()
    server.stop(None)


def managed(name: str, namespace: str = "llm", deployment: str = "", **server) -> types_pb2.ManagedServer:
    return types_pb2.ManagedServer(server=types_pb2.Server(name=name, **server),
                                   ref=types_pb2.KubeRef(namespace=namespace, name=deployment or name))


def request(**overrides) -> actuator_pb2.ActuateRequest:
    fields = {
        "allocations": [optimizer_pb2.ServerAllocation(
            server_name="granite", allocation=types_pb2.Allocation(accelerator="A100", num_replicas=4, max_batch=8))],
        "managed": [managed("llama"), managed("granite", min_replicas=1)],
    }
    fields.update(overrides)
    return actuator_pb2.ActuateRequest(**fields)


def test_actuate_reports_one_result_per_deployment_in_order(served) -> None:
    stub, _ = served
    results = stub.Actuate(request(), timeout=5).results
    assert [(r.ref.name, actuator_pb2.ActuationResult.Outcome.Name(r.outcome), r.replicas_from, r.replicas_to)
            for r in results] == [("granite", "CHANGED", 2, 4), ("llama", "SKIPPED", 3, 3)]
    assert results[0].accelerator == "A100" and "absent from the solution" in results[1].reason


def test_dry_run_is_passed_through_and_reported(served) -> None:
    stub, fake = served
    results = stub.Actuate(request(dry_run=True), timeout=5).results
    assert fake.calls[-1][2] is True and all(r.dry_run for r in results)
    assert fake.calls[-1][3] is True  # the caller is still waiting while the actuator works


@pytest.mark.parametrize(("overrides", "field"), [
    pytest.param({"managed": [managed("granite", namespace="", deployment="g")]},
                 "managed[0].ref", id="ref_without_namespace"),
    pytest.param({"managed": [types_pb2.ManagedServer(ref=types_pb2.KubeRef(namespace="llm", name="g"))]},
                 "managed[0].server.name", id="ref_without_server_name"),
    pytest.param({"allocations": [optimizer_pb2.ServerAllocation(
        server_name="granite", allocation=types_pb2.Allocation(accelerator="A100", num_replicas=-1))]},
                 "allocations[granite].num_replicas", id="negative_replicas"),
    pytest.param({"managed": [managed("granite", min_replicas=-2)]},
                 "managed[0].server[granite].min_replicas", id="negative_min_replicas"),
    pytest.param({"managed": [managed("g"), managed("g", deployment="h")]}, "managed[1].server.name",
                 id="repeated"),
])
def test_bad_input_is_invalid_argument_naming_the_field(served, overrides, field) -> None:
    stub, fake = served
    with pytest.raises(grpc.RpcError) as caught:
        stub.Actuate(request(**overrides), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()
    assert fake.calls == []
