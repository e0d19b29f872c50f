"""Hostile labels on one Deployment (issue 15): a warning naming it and the label, the others decided, and the
collector never answers INTERNAL. Through a real CollectorService on 127.0.0.1."""

from __future__ import annotations

import grpc
import pytest

from proto import collector_pb2, collector_pb2_grpc
from services.collector import aggregate
from services.collector.collect import Collector
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.core import labels as lb
from services.runtime import convert
from services.runtime.grpcserve import build_server
from tests.collector.fakes import LABELS, FixedKube, FixedMetrics, deployment, write_data


@pytest.fixture
def collect(tmp_path):
    servers = []

    def run(facts, **kw):
        collector = Collector(FixedKube(facts), FixedMetrics(), write_data(tmp_path), **kw)
        server, port, _ = build_server(register(CollectorServicer(collector)), [SERVICE_NAME], "127.0.0.1:0")
        servers.append(server)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = collector_pb2_grpc.CollectorServiceStub(channel).Collect(collector_pb2.CollectRequest(),
                                                                              timeout=10)
        return convert.collection_from_proto(reply)

    yield run
    for server in servers:
        server.stop(0)


def good() -> object:
    return deployment(name="good", labels={**LABELS, lb.NAME: "good"})


@pytest.mark.parametrize(("label", "value", "warning"), [
    pytest.param(lb.MAX_QUEUE, "9999999999", "label inferno.server.allocation.maxqueuesize='9999999999' is above "
                 "the bound 1,000,000 requests (docs/model.md s1); ignored", id="maxqueuesize-9999999999"),
    pytest.param(lb.MAX_BATCH, "9999999999", "label inferno.server.allocation.maxbatchsize='9999999999' is above "
                 "the bound 4,096 requests", id="maxbatchsize-9999999999"),
    pytest.param(lb.LOAD_RPM, "1e308", "label inferno.server.load.rpm='1e308' is above the bound 1,000,000 req/min",
                 id="load-rpm-1e308"),
    pytest.param(lb.LOAD_OUT_TOKENS, "0.5", "label inferno.server.load.outtokens='0.5' is between 0 and 1",
                 id="load-outtokens-half"),
    pytest.param(lb.LOAD_IN_TOKENS, "Infinity", "label inferno.server.load.intokens='Infinity' is not a "
                 "non-negative number", id="load-intokens-infinity"),
    pytest.param(lb.MIN_REPLICAS, "9999999999", "label inferno.server.minreplicas='9999999999' is above the "
                 "Deployment's maximum of 100 replicas", id="minreplicas-9999999999"),
    pytest.param(lb.MAX_REPLICAS, "0", "label inferno.server.maxreplicas='0' is below 1; the default 100 applies",
                 id="maxreplicas-zero"),
])
def test_an_out_of_bound_label_is_a_warning_naming_the_deployment_and_the_others_are_decided(
        collect, label, value, warning) -> None:
    bad = deployment(name="bad", labels={**LABELS, lb.NAME: "bad", label: value})
    collection = collect([bad, good()], max_replicas=100)
    assert "good" in [r.name for r in collection.managed]
    assert f"Deployment llm/bad: {warning}" in "\n".join(collection.warnings)


def test_minreplicas_of_a_billion_is_clamped_to_the_maximum_with_a_warning(collect) -> None:
    bad = deployment(name="bad", labels={**LABELS, lb.NAME: "bad", lb.MIN_REPLICAS: "1000000000"})
    capped = deployment(name="capped", labels={**LABELS, lb.NAME: "capped", lb.MIN_REPLICAS: "50",
                                               lb.MAX_REPLICAS: "8"})
    collection = collect([bad, capped, good()], max_replicas=100)
    by_name = {r.name: r.server for r in collection.managed}
    assert by_name["bad"].min_replicas == 100 and by_name["capped"].min_replicas == 8
    assert ("Deployment llm/bad: label inferno.server.minreplicas='1000000000' is above the Deployment's maximum of "
            "100 replicas (inferno.server.maxreplicas or INFERNO_MAX_REPLICAS); clamped to 100") in collection.warnings


def test_a_deployment_whose_labels_break_the_collector_is_skipped_alone(collect, monkeypatch) -> None:
    real = aggregate.collect_one

    def broken(facts, *args, **kw):
        if facts.ref.name == "bad":
            raise OverflowError("Value out of range")
        return real(facts, *args, **kw)
    monkeypatch.setattr(aggregate, "collect_one", broken)
    collection = collect([deployment(name="bad", labels={**LABELS, lb.NAME: "bad"}), good()])
    assert [r.name for r in collection.managed] == ["good"]
    assert ("Deployment llm/bad: skipped: its labels or metrics could not be read (OverflowError: Value out of "
            "range)") in collection.warnings


def test_a_long_label_value_is_quoted_short(collect) -> None:
    bad = deployment(name="bad", labels={**LABELS, lb.NAME: "bad", lb.MAX_BATCH: "9" * 5000})
    collection = collect([bad])
    [warning] = [w for w in collection.warnings if "maxbatchsize" in w]
    assert len(warning) < 250 and "(5002 characters)" in warning


@pytest.mark.parametrize("namespace", ["../../etc", "x" * 100_000, "a/b", "UPPER", "llm?watch=true", " "])
def test_a_requested_namespace_that_is_no_namespace_name_is_invalid_argument(tmp_path, namespace) -> None:
    collector = Collector(FixedKube([good()]), FixedMetrics(), write_data(tmp_path))
    server, port, _ = build_server(register(CollectorServicer(collector)), [SERVICE_NAME], "127.0.0.1:0")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as err:
            collector_pb2_grpc.CollectorServiceStub(channel).Collect(
                collector_pb2.CollectRequest(namespaces=["llm", namespace]), timeout=10)
    finally:
        server.stop(0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("namespaces[1]: ") and "is not a namespace name" in err.value.details()
    assert len(err.value.details()) < 250


def test_watch_namespace_must_name_namespaces() -> None:
    from services.runtime.config import ConfigError, load_config

    assert load_config({"WATCH_NAMESPACE": "llm, team-a"}).watch_namespaces == ("llm", "team-a")
    with pytest.raises(ConfigError, match="WATCH_NAMESPACE='llm,Team_A' is invalid: 'Team_A' is not a namespace"):
        load_config({"WATCH_NAMESPACE": "llm,Team_A"})
