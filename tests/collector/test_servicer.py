"""CollectorService through a real gRPC server on 127.0.0.1: the response contract, errors, namespaces."""

from __future__ import annotations

import grpc
import pytest

from proto import collector_pb2, collector_pb2_grpc
from services.collector.aggregate import PodRates
from services.collector.collect import Collector, choose_namespaces
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.core import model as m
from services.core.errors import UnavailableError
from services.runtime import convert
from services.runtime.grpcserve import build_server
from tests.collector.fakes import FixedKube, FixedMetrics, deployment, write_data


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(kube, metrics, **kw):
        collector = Collector(kube, metrics, write_data(tmp_path), **kw)
        server, port, _ = build_server(register(CollectorServicer(collector)), [SERVICE_NAME], "127.0.0.1:0")
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        return collector_pb2_grpc.CollectorServiceStub(channel)

    yield start
    for server in servers:
        server.stop(0)


def test_collect_answers_servers_refs_warnings_and_capacity(serve):
    labels = {**deployment().labels, "inferno.server.class": "Premium", "inferno.server.allocation.accelerator": "A100"}
    facts = [deployment(pods=("pod-a",), labels=labels),
             deployment(name="nameless", labels={"inferno.server.managed": "true", "inferno.server.model": "llama"})]
    rates = {("llm", "vllm"): {"pod-a": PodRates(requests_per_s=1.0, prompt_tokens_per_s=50.0,
                                                 generation_tokens_per_s=100.0)}}
    stub = serve(FixedKube(facts), FixedMetrics(rates, ["a source warning"]))
    reply = stub.Collect(collector_pb2.CollectRequest(), timeout=10)
    [managed] = convert.collection_from_proto(reply).managed
    server = managed.server
    assert (server.name, server.service_class, server.model) == ("premium-llama", "Premium", "llama")
    assert (server.load.arrival_rate_rpm, server.load.avg_in_tokens, server.load.avg_out_tokens) == (60, 50, 100)
    assert server.current.accelerator == "A100" and server.current.num_replicas == 1
    assert server.current.cost_per_hour == 40.0
    assert server.observed.source == "prometheus" and server.observed.itl_ms is None
    assert (managed.name, managed.ref.namespace, managed.ref.name, managed.spec_replicas,
            managed.ready_replicas, managed.load_measured) == ("premium-llama", "llm", "vllm", 1, 1, True)
    assert list(reply.warnings) == ["a source warning",
                                    "Deployment llm/nameless: skipped: label inferno.server.name is missing or empty"]
    assert dict(convert.capacity_from_proto(reply.capacity).counts) == {"A100": 6}


def test_static_data_in_the_request_is_used_instead_of_the_data_files(serve):
    stub = serve(FixedKube([deployment()]), FixedMetrics())
    static = m.SystemData(accelerators=(m.Accelerator("A100", "A100", cost_per_hour=40.0),),
                          capacity=m.Capacity({"A100": 1, "L4": 3}))
    reply = stub.Collect(collector_pb2.CollectRequest(static=convert.system_to_proto(static)), timeout=10)
    assert dict(convert.capacity_from_proto(reply.capacity).counts) == {"A100": 1, "L4": 3}


def test_kubernetes_api_failure_answers_unavailable(serve):
    stub = serve(FixedKube([], UnavailableError("Kubernetes API: down")), FixedMetrics())
    with pytest.raises(grpc.RpcError) as err:
        stub.Collect(collector_pb2.CollectRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_requested_namespaces_are_limited_to_the_watched_ones(serve):
    kube = FixedKube([deployment(namespace="llm")])
    stub = serve(kube, FixedMetrics(), watch_namespaces=("llm", "other"))
    reply = stub.Collect(collector_pb2.CollectRequest(namespaces=["llm", "secret"]), timeout=10)
    assert kube.asked == [["llm"]]
    assert "namespace secret is not watched (WATCH_NAMESPACE); ignored" in reply.warnings
    assert [r.server.name for r in reply.managed] == ["premium-llama"]


def test_no_managed_deployment_is_an_empty_answer(serve):
    reply = serve(FixedKube([]), FixedMetrics()).Collect(collector_pb2.CollectRequest(), timeout=10)
    assert list(reply.managed) == []


@pytest.mark.parametrize("requested, watched, expected", [
    pytest.param([], [], ([], []), id="all"),
    pytest.param(["b", "a"], [], (["a", "b"], []), id="requested_only"),
    pytest.param([], ["w"], (["w"], []), id="watched_only"),
    pytest.param(["x"], ["w"], ([], ["namespace x is not watched (WATCH_NAMESPACE); ignored"]), id="outside"),
])
def test_choose_namespaces(requested, watched, expected):
    assert choose_namespaces(requested, watched) == expected
