"""Malformed Optimize requests (issue 15): every figure out of its physical bound is INVALID_ARGUMENT naming the
field and the value cut short, never INTERNAL or an OK answer costing infinity; an echoed value never makes the
status detail exceed the header limit."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from proto import optimizer_pb2, optimizer_pb2_grpc
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.runtime import convert
from services.runtime.grpcserve import MAX_DETAIL_CHARS, build_server
from tests.optimizer.conftest import server, tiny_system


@pytest.fixture(scope="module")
def stub() -> Iterator[optimizer_pb2_grpc.OptimizerServiceStub]:
    grpc_server, port, _ = build_server(register(OptimizerServicer()), [SERVICE_NAME], "127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield optimizer_pb2_grpc.OptimizerServiceStub(channel)
    grpc_server.stop(None)


def request(mutate) -> optimizer_pb2.OptimizeRequest:
    msg = optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(tiny_system([server("a")])))
    mutate(msg.system)
    return msg


def _set(path: str, value):
    def mutate(system):
        *parents, leaf = path.split(".")
        target = system
        for part in parents:
            name, _, index = part.partition("[")
            target = getattr(target, name)
            if index:
                target = target[int(index.rstrip("]"))]
        name, _, key = leaf.partition("[")
        if key:  # a map entry: counts[G2]
            getattr(target, name)[key.rstrip("]")] = value
        else:
            setattr(target, leaf, value)
    return mutate


INF = float("inf")
CASES = [
    pytest.param("service_classes[0].targets[0].slo_tps", INF, "slo_tps must be a finite number, got inf",
                 id="slo-tps-inf"),
    pytest.param("accelerators[0].cost_per_hour", 1e308, "system.accelerators[G2].cost_per_hour must be within "
                 "0..1,000,000 per hour, got 1e+308", id="cost-1e308"),
    pytest.param("accelerators[0].cost_per_hour", INF, "cost_per_hour must be a finite number, got inf",
                 id="cost-inf"),
    pytest.param("servers[0].current.load.avg_in_tokens", 1e300,
                 "system.servers[a].current.load.avg_in_tokens must be within 0..10,000,000 tokens",
                 id="in-tokens-1e300"),
    pytest.param("models[0].at_tokens", 2147483647, "system.models[m/G2].at_tokens must be within 0..10,000,000 "
                 "tokens, got 2147483647", id="at-tokens-int32-max"),
    pytest.param("models[0].max_batch_size", 2147483647, "max_batch_size must be within 0..4,096", id="batch-huge"),
    pytest.param("servers[0].min_replicas", 1_000_000_000, "min_replicas must be within 0..10,000 replicas",
                 id="min-replicas-1e9"),
    pytest.param("servers[0].current.load.arrival_rate_rpm", 1e308, "arrival_rate_rpm must be within "
                 "0..1,000,000 req/min", id="rpm-1e308"),
    pytest.param("models[0].perf.alpha_ms", INF, "perf.alpha_ms must be a finite number", id="alpha-inf"),
    pytest.param("capacity.counts[G2]", 2147483647, "system.capacity.counts[G2] must be within 0..1,000,000",
                 id="capacity-huge"),
]


@pytest.mark.parametrize(("path", "value", "message"), CASES)
def test_out_of_bound_figure_is_invalid_argument_naming_field_and_value(stub, path: str, value, message: str) -> None:
    msg = request(_set(path, value))
    with pytest.raises(grpc.RpcError) as err:
        stub.Optimize(msg, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details()


def test_a_100k_character_value_is_cut_in_the_error_detail(stub) -> None:
    def mutate(system):
        system.servers[0].name = "n" * 100_000
        system.servers[0].current.cost_per_hour = -1
    with pytest.raises(grpc.RpcError) as err:
        stub.Optimize(request(mutate), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.value.details()) <= MAX_DETAIL_CHARS
    assert "must be a non-negative number, got -1" in err.value.details()


def test_a_100k_character_detail_from_anywhere_is_cut_not_resource_exhausted(stub) -> None:
    def mutate(system):
        system.accelerators[0].name = "g" * 100_000
    with pytest.raises(grpc.RpcError) as err:
        stub.Optimize(request(mutate), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.value.details()) <= MAX_DETAIL_CHARS


@pytest.mark.parametrize("out_tokens", [0.5, 1e-320, 0.999])
def test_a_measured_average_below_one_output_token_is_sized_not_internal(stub, out_tokens: float) -> None:
    """Issue 15: avgOutTokens in (0, 1) (a float average from the collector) was a ZeroDivisionError in the batch
    rule, INTERNAL for the whole cycle."""
    def mutate(system):
        system.servers[0].current.load.avg_out_tokens = out_tokens
    reply = stub.Optimize(request(mutate), timeout=30)
    for row in reply.allocations:
        assert 0 <= row.allocation.num_replicas <= 10_000 and row.allocation.max_batch <= 4_096
