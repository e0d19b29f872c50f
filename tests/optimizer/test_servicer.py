"""OptimizerService contract: a real gRPC server on 127.0.0.1, called through its stub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from proto import optimizer_pb2, optimizer_pb2_grpc, types_pb2
from services.core.model import SolverKind, SystemData
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.optimizer.solver import SolverDefaults, solve
from services.runtime import convert
from services.runtime.grpcserve import build_server
from tests.optimizer.conftest import server, tiny_system, v03


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
    small_system = v03(small_system)
    reply = optimize(stub, small_system)
    assert convert.solution_from_proto(reply) == solve(small_system).solution
    assert reply.stats.candidates == solve(small_system).candidates
    assert reply.stats.solver == "exact"
    assert reply.stats.solve_time_ms == pytest.approx(1000.0)  # one tick of the injected clock
    assert reply.stats.total_cost_per_hour == pytest.approx(35767.0)


def test_optimize_stats_carry_the_exact_outcome_bound_gap_and_time(small_system: SystemData, stub) -> None:
    stats = optimize(stub, v03(small_system)).stats
    assert (stats.outcome, stats.gap) == ("optimal", 0.0)
    assert stats.HasField("gap") and stats.HasField("best_bound")
    assert stats.objective == pytest.approx(39343.7) and stats.best_bound == pytest.approx(39343.7)
    assert stats.greedy_objective == pytest.approx(43717.3)
    assert stats.exact_solve_time_ms > 0 and stats.time_limit_s == 10.0
    assert dict(stats.served_by_priority) == {1: 5, 2: 5, 3: 5}
    record = MessageToDict(stats, preserving_proto_field_name=True)  # what the cycle record keeps
    assert (record["outcome"], record["gap"], record["served_by_priority"]) == ("optimal", 0.0,
                                                                                 {"1": 5, "2": 5, "3": 5})


def test_optimize_follows_the_requested_solver_and_milp_solver_selects_exact(small_system: SystemData,
                                                                             stub) -> None:
    greedy = replace(small_system, optimizer=replace(small_system.optimizer, solver=SolverKind.GREEDY))
    reply = optimize(stub, greedy)
    assert (reply.stats.solver, reply.stats.total_cost_per_hour) == ("greedy", pytest.approx(39743.0))
    assert not reply.stats.HasField("outcome")
    milp = replace(small_system, optimizer=replace(small_system.optimizer, milp_solver=True))
    assert optimize(stub, milp).stats.solver == "exact"


def test_the_service_setting_chooses_the_solver_the_data_leaves_open(small_system: SystemData) -> None:
    servicer = OptimizerServicer(defaults=SolverDefaults(SolverKind.GREEDY, 3.0))
    grpc_server, port, _ = build_server(register(servicer), [SERVICE_NAME], "127.0.0.1:0")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = optimize(optimizer_pb2_grpc.OptimizerServiceStub(channel), small_system)
            milp = replace(small_system, optimizer=replace(small_system.optimizer, milp_solver=True))
            exact = optimize(optimizer_pb2_grpc.OptimizerServiceStub(channel), milp)
    finally:
        grpc_server.stop(None)
    assert reply.stats.solver == "greedy"
    assert (exact.stats.solver, exact.stats.time_limit_s) == ("exact", 3.0)


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
