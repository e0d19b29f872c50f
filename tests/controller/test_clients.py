"""The controller's gRPC clients: a failed call becomes a domain error saying whether the service may have acted,
and every call carries the cycle id, which the service's log lines then show."""

from __future__ import annotations

import grpc
import pytest
import structlog
import structlog.testing

from services.collector.collect import Collector
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.controller.clients import ServiceClients, classify
from services.core.errors import NoAnswerError, RefusedError
from services.runtime.grpcserve import build_server
from tests.collector.fakes import FixedKube, FixedMetrics, deployment, write_data


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(("code", "details", "kind"), [
    pytest.param(grpc.StatusCode.INVALID_ARGUMENT, "managed[0].ref needs a namespace", RefusedError, id="refused"),
    pytest.param(grpc.StatusCode.FAILED_PRECONDITION, "no capacity", RefusedError, id="precondition"),
    pytest.param(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: connection refused",
                 RefusedError, id="never_connected"),
    pytest.param(grpc.StatusCode.UNAVAILABLE, "Socket closed", NoAnswerError, id="connection_lost_mid_call"),
    pytest.param(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", NoAnswerError, id="deadline"),
    pytest.param(grpc.StatusCode.INTERNAL, "ZeroDivisionError", NoAnswerError, id="internal"),
])
def test_a_failed_call_is_refused_or_unanswered(code, details, kind) -> None:
    error = classify("actuator", FakeRpcError(code, details))
    assert type(error) is kind
    assert (error.service, error.code, str(error)) == ("actuator", code.name, f"{code.name}: {details}")


def test_a_service_that_does_not_listen_is_refused() -> None:
    clients = ServiceClients({name: "127.0.0.1:9" for name in ("collector", "optimizer", "actuator")}, 2.0)
    try:
        with pytest.raises(RefusedError) as caught:
            clients.collect()
    finally:
        clients.close()
    assert caught.value.service == "collector" and caught.value.code == "UNAVAILABLE"


def test_the_cycle_id_reaches_the_service_log_lines(tmp_path) -> None:
    collector = Collector(FixedKube([deployment()]), FixedMetrics(), write_data(tmp_path))
    server, port, _ = build_server(register(CollectorServicer(collector)), [SERVICE_NAME], "127.0.0.1:0")
    address = f"127.0.0.1:{port}"
    clients = ServiceClients({"collector": address, "optimizer": address, "actuator": address}, 5.0)
    try:
        with structlog.testing.capture_logs() as logs, structlog.contextvars.bound_contextvars(cycle_id=17):
            collected = clients.collect()
    finally:
        clients.close()
        server.stop(None)
    assert [r.name for r in collected.value.managed] == ["premium-llama"]
    [completed] = [e for e in logs if e["event"] == "rpc_completed"]
    assert (completed["rpc"], completed["code"], completed["cycle_id"]) == ("Collect", "OK", 17)
