"""Actuate end to end: gRPC stub -> servicer -> official client -> emulated cluster, metrics over HTTP."""

from __future__ import annotations

import grpc
import pytest
from kubernetes import client

from proto import actuator_pb2, actuator_pb2_grpc, optimizer_pb2, types_pb2
from services.actuator import plan as p
from services.actuator.kube import KubeActuator
from services.actuator.metrics import ActuatorMetrics
from services.actuator.servicer import SERVICE_NAME, ActuatorServicer, register
from services.runtime.grpcserve import build_server
from tests.actuator.test_kube import NS, create, deployment
from tests.actuator.test_metrics import labels, scrape

NAMES = ("granite", "llama", "mistral", "qwen")


@pytest.fixture
def actuator(cluster):
    """(stub, metrics port) of an actuator on 127.0.0.1 over the emulated cluster with four Deployments."""
    create(cluster, *(deployment(name, 1) for name in NAMES))
    metrics = ActuatorMetrics()
    http, metrics_port = metrics.serve("127.0.0.1", 0)
    servicer = ActuatorServicer(KubeActuator(cluster, p.PlanSettings()), metrics)
    server, port, _ = build_server(register(servicer), [SERVICE_NAME], "127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield actuator_pb2_grpc.ActuatorServiceStub(channel), metrics_port
    channel.close()
    server.stop(None)
    http.shutdown()


def request(replicas: dict[str, int], dry_run: bool = False) -> actuator_pb2.ActuateRequest:
    return actuator_pb2.ActuateRequest(
        allocations=[optimizer_pb2.ServerAllocation(server_name=name, allocation=types_pb2.Allocation(
            accelerator="A100", num_replicas=n, max_batch=16)) for name, n in replicas.items()],
        managed=[managed(name) for name in NAMES], dry_run=dry_run)


def managed(name: str) -> types_pb2.ManagedServer:
    return types_pb2.ManagedServer(server=types_pb2.Server(name=name), ref=types_pb2.KubeRef(namespace=NS, name=name))


def test_actuate_scales_the_cluster_and_exports_desired_replicas(actuator, cluster) -> None:
    stub, metrics_port = actuator
    reply = stub.Actuate(request({"granite": 3, "llama": 1, "mistral": 2}), timeout=10)
    outcomes = {r.ref.name: (actuator_pb2.ActuationResult.Outcome.Name(r.outcome), r.replicas_to)
                for r in reply.results}
    assert outcomes == {"granite": ("CHANGED", 3), "llama": ("UNCHANGED", 1), "mistral": ("CHANGED", 2),
                        "qwen": ("SKIPPED", 1)}
    apps = client.AppsV1Api(cluster)
    assert [apps.read_namespaced_deployment_scale(n, NS).spec.replicas for n in NAMES] == [3, 1, 2, 1]
    values = scrape(metrics_port)
    assert values[("inferno_desired_replicas", labels("granite", "granite", "A100"))] == 3
    assert values[("wva_desired_replicas", labels("mistral", "mistral", "A100"))] == 2
    assert values[("inferno_current_replicas", labels("llama", "llama", "A100"))] == 1
    assert values[("inferno_actuations_total", (("dry_run", "false"), ("outcome", "changed")))] == 2


def test_forced_dry_run_setting_writes_nothing(cluster) -> None:
    create(cluster, deployment("granite", 1))
    servicer = ActuatorServicer(KubeActuator(cluster, p.PlanSettings()), ActuatorMetrics(), force_dry_run=True)
    server, port, _ = build_server(register(servicer), [SERVICE_NAME], "127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = actuator_pb2_grpc.ActuatorServiceStub(channel).Actuate(actuator_pb2.ActuateRequest(
            allocations=[optimizer_pb2.ServerAllocation(server_name="granite", allocation=types_pb2.Allocation(
                accelerator="A100", num_replicas=4))],
            managed=[managed("granite")]),
            timeout=10)
    server.stop(None)
    assert reply.results[0].dry_run and reply.results[0].replicas_to == 4
    assert client.AppsV1Api(cluster).read_namespaced_deployment_scale("granite", NS).spec.replicas == 1

