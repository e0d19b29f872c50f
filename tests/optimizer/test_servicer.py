"""OptimizerService contract: a real gRPC server on 127.0.0.1, called through its stub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest

from proto import optimizer_pb2, optimizer_pb2_grpc, types_pb2
from services.core.model import SystemData
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.optimizer.solver import solve
from services.runtime import convert
from services.runtime.grpcserve import build_server
from tests.optimizer.conftest import server, tiny_system


@pytest.fixture(scope="module")
def stub() -> Iterator[optimizer_pb2_grpc.OptimizerServiceStub]:
    ticks = iter(range(0, 1_000_000))
    grpc_server, port, _ = build_server(register(OptimizerServicer(now=lambda: float(next(ticks)))), [SERVICE_NAME],
                                        "127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield optimizer_pb2_grpc.OptimizerServiceStub(channel)
    grpc_server.stop(None)


def optimize(stub: optimizer_pb2_grpc.OptimizerServiceStub, system: SystemData) -> optimizer_pb2.OptimizeResponse:
    return stub.Optimize(optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(system)), timeout=30)


def test_optimize_over_grpc_returns_the_same_solution_as_the_solver(small_system: SystemData, stub) -> None:
    reply = optimize(stub, small_system)
    assert convert.solution_from_proto(reply) == solve(small_system).solution
    assert reply.stats.candidates == solve(small_system).candidates
    assert reply.stats.solver == "greedy"
    assert reply.stats.solve_time_ms == pytest.approx(1000.0)  # one tick of the injected clock
    assert reply.stats.total_cost_per_hour == pytest.approx(39743.0)


def test_empty_system_is_a_valid_empty_answer(stub) -> None:
    reply = stub.Optimize(optimizer_pb2.OptimizeRequest(), timeout=30)
    assert not reply.allocations and not reply.unallocated


def test_unallocated_servers_come_back_with_their_reason(stub) -> None:
    reply = optimize(stub, tiny_system([server("a", cls="Gold"), server("b")]))
    assert [(u.server_name, u.reason) for u in reply.unallocated] == [("a", "unknown service class 'Gold'")]
    assert [a.server_name for a in reply.allocations] == ["b"]


def test_inconsistent_system_is_invalid_argument_naming_the_field(stub) -> None:
    system = tiny_system([server("a")])
    with pytest.raises(grpc.RpcError) as err:
        optimize(stub, replace(system, servers=system.servers * 2))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "servers.name: duplicate 'a'" in err.value.details()


def test_unknown_saturation_policy_is_invalid_argument(stub) -> None:
    msg = convert.system_to_proto(tiny_system([server("a")]))
    msg.optimizer.CopyFrom(types_pb2.OptimizerSettings(saturation_policy="Greedy"))
    with pytest.raises(grpc.RpcError) as err:
        stub.Optimize(optimizer_pb2.OptimizeRequest(system=msg), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "saturation_policy" in err.value.details()
