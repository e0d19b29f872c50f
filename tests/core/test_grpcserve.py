"""The shared gRPC server: standard health checks, reflection, domain errors mapped to status codes, drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
import structlog
import structlog.testing
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harness.services import free_port
from proto import optimizer_pb2, optimizer_pb2_grpc
from services.core.errors import DataFileError, InfeasibleError, InvalidInputError, UnavailableError
from services.runtime.grpcserve import CYCLE_ID_METADATA, build_server, drain

NAME = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name


class Raising(optimizer_pb2_grpc.OptimizerServiceServicer):
    """Answers or raises whatever error the test puts in ``error``."""

    error: Exception | None = None

    def Optimize(self, request, context):  # noqa: N802 - gRPC method name
        if self.error is not None:
            raise self.error
        return optimizer_pb2.OptimizeResponse()


@pytest.fixture
def running():
    servicer = Raising()
    server, port, health = build_server(
        lambda s: optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(servicer, s), [NAME], "127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield servicer, channel, server, health
    channel.close()
    server.stop(0).wait()


def test_health_reports_serving_for_the_service_and_overall(running) -> None:
    _, channel, _, _ = running
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", NAME):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(running) -> None:
    _, channel, _, _ = running
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {NAME, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(("error", "code"), [
    pytest.param(InvalidInputError("system.servers[a].model is empty"), grpc.StatusCode.INVALID_ARGUMENT, id="invalid"),
    pytest.param(DataFileError("model-data.json", "$.models[0].acc", "unknown"), grpc.StatusCode.INVALID_ARGUMENT,
                 id="datafile"),
    pytest.param(InfeasibleError("no capacity"), grpc.StatusCode.FAILED_PRECONDITION, id="infeasible"),
    pytest.param(UnavailableError("prometheus down"), grpc.StatusCode.UNAVAILABLE, id="unavailable"),
    pytest.param(ZeroDivisionError("bug"), grpc.StatusCode.INTERNAL, id="bug"),
])
def test_domain_error_becomes_its_status_code_with_the_message(running, error: Exception, code) -> None:
    servicer, channel, _, _ = running
    servicer.error = error
    with pytest.raises(grpc.RpcError) as caught:
        optimizer_pb2_grpc.OptimizerServiceStub(channel).Optimize(optimizer_pb2.OptimizeRequest(), timeout=5)
    assert caught.value.code() == code
    assert str(error) in caught.value.details()


def test_every_call_is_logged_once_with_its_code_duration_and_the_callers_cycle_id(running) -> None:
    servicer, channel, _, _ = running
    stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
    with structlog.testing.capture_logs() as logs:
        stub.Optimize(optimizer_pb2.OptimizeRequest(), timeout=5, metadata=((CYCLE_ID_METADATA, "42"),))
        servicer.error = InvalidInputError("system.servers[a].model is empty")
        with pytest.raises(grpc.RpcError):
            stub.Optimize(optimizer_pb2.OptimizeRequest(), timeout=5)
    completed = [e for e in logs if e["event"] == "rpc_completed"]
    assert [(e["rpc"], e["code"], e.get("cycle_id")) for e in completed] == [
        ("Optimize", "OK", 42), ("Optimize", "INVALID_ARGUMENT", None)]
    assert all(e["duration_ms"] >= 0 for e in completed)
    [failed] = [e for e in logs if e["event"] == "rpc_failed"]
    assert failed["log_level"] == "warning" and "exc_info" not in failed


def test_an_unexpected_error_is_logged_with_its_traceback(running) -> None:
    servicer, channel, _, _ = running
    servicer.error = ZeroDivisionError("bug")
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.RpcError):
        optimizer_pb2_grpc.OptimizerServiceStub(channel).Optimize(optimizer_pb2.OptimizeRequest(), timeout=5)
    [failed] = [e for e in logs if e["event"] == "rpc_failed"]
    assert failed["log_level"] == "error" and failed["code"] == "INTERNAL" and failed["exc_info"] is True


def test_drain_marks_not_serving_and_stops(running) -> None:
    _, channel, server, health = running
    drain(server, health, grace_s=0.5)
    with pytest.raises(grpc.RpcError) as caught:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=NAME), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


SLOW_SERVER = """
import sys, time
from proto import optimizer_pb2, optimizer_pb2_grpc
from services.runtime.grpcserve import serve
from services.runtime.logs import configure_logging

configure_logging("info")

class Slow(optimizer_pb2_grpc.OptimizerServiceServicer):
    def Optimize(self, request, context):
        time.sleep(1.5)
        return optimizer_pb2.OptimizeResponse()

serve(lambda s: optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(Slow(), s), [sys.argv[2]],
      f"127.0.0.1:{sys.argv[1]}", grace_s=10.0, component="test")
"""


def test_sigterm_drains_the_in_flight_call_then_the_process_exits_cleanly(tmp_path) -> None:
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(port), NAME], cwd=root,
                               env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE, text=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = optimizer_pb2_grpc.OptimizerServiceStub(channel).Optimize.future(optimizer_pb2.OptimizeRequest(),
                                                                               timeout=30)
        time.sleep(0.5)  # the call is in the servicer now
        process.send_signal(signal.SIGTERM)
        assert call.result() == optimizer_pb2.OptimizeResponse()  # answered, not cancelled
        assert process.wait(timeout=20) == 0
        events = [json.loads(line)["event"] for line in process.stdout.read().splitlines() if line.startswith("{")]
        lifecycle = [e for e in events if e.startswith("server_")]
        assert lifecycle[-3:] == ["server_started", "server_draining", "server_stopped"]
        assert events.index("server_draining") < events.index("rpc_completed") < events.index("server_stopped")
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()
