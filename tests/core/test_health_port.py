"""A gRPC service listens on loopback; its health-only port answers the kubelet's probes and nothing else."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from proto import optimizer_pb2, optimizer_pb2_grpc
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.runtime.config import load_config
from services.runtime.grpcserve import build_health_server, build_server


def test_the_grpc_services_default_to_loopback_and_the_health_port_to_none() -> None:
    config = load_config({})
    assert config.bind_address == "127.0.0.1"
    assert config.collector_address == "127.0.0.1:3301"
    assert config.health_address(config.optimizer_health_port) == ""
    assert load_config({"INFERNO_HTTP_BIND_ADDRESS": "127.0.0.1"}).health_address(3312) == "127.0.0.1:3312"


@pytest.fixture
def ports():
    server, port, health = build_server(register(OptimizerServicer()), [SERVICE_NAME], "127.0.0.1:0")
    health_server, health_port = build_health_server(health, "127.0.0.1:0")
    yield port, health_port, health
    health_server.stop(None)
    server.stop(None)


def test_the_health_port_answers_serving_and_follows_the_drain(ports) -> None:
    _, health_port, health = ports
    with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        health.enter_graceful_shutdown()
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_the_health_port_serves_no_business_method_and_no_reflection(ports) -> None:
    port, health_port, _ = ports
    with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            optimizer_pb2_grpc.OptimizerServiceStub(channel).Optimize(optimizer_pb2.OptimizeRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=10))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert not optimizer_pb2_grpc.OptimizerServiceStub(channel).Optimize(
            optimizer_pb2.OptimizeRequest(), timeout=10).allocations
