"""The pool router (emulator/router.py) and a pool in the local cluster: each class's requests go to the
Deployments of the pool in proportion to the routing weights of the ConfigMap, with the class's priority, and a
new ConfigMap takes effect at once."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import requests

from emulator.cluster import Cluster
from emulator.loadshape import update_schedules
from emulator.router import PoolRouter
from services.core import routing

TABLE = routing.table_from_answer("llama", ["Alan", "Noel"], {"llama-a": [9.0, 1.0], "llama-b": [1.0, 0.0]})


def _router(table: routing.RoutingTable | None, ready: dict[str, list[str]]) -> tuple[PoolRouter, dict]:
    holder = {"obj": None if table is None else {**routing.configmap("llm", table),
                                                 "metadata": {"resourceVersion": "1"}}}
    return PoolRouter("llama", sorted(ready), lambda d: ready[d], lambda: holder["obj"], seed=1), holder


def test_each_class_follows_its_weights_and_round_robins_within_a_deployment() -> None:
    ready = {"llama-a": ["http://a0", "http://a1"], "llama-b": ["http://b0"]}
    router, _ = _router(TABLE, ready)
    alan = Counter(router.pick("Alan") for _ in range(2000))
    noel = Counter(router.pick("Noel") for _ in range(200))
    assert 0.86 < (alan["http://a0"] + alan["http://a1"]) / 2000 < 0.94  # 9 : 1
    assert abs(alan["http://a0"] - alan["http://a1"]) <= 1
    assert set(noel) == {"http://a0", "http://a1"}  # Noel has no weight on llama-b
    assert (router.priority("Alan"), router.priority("Noel"), router.priority("other", 7)) == (0, 1, 7)


def test_without_weights_or_ready_replicas_the_class_goes_everywhere_alike() -> None:
    ready = {"llama-a": ["http://a0"], "llama-b": ["http://b0"]}
    router, holder = _router(None, ready)
    assert Counter(router.pick("Alan") for _ in range(10)) == {"http://a0": 5, "http://b0": 5}
    holder["obj"] = {**routing.configmap("llm", TABLE), "metadata": {"resourceVersion": "2"}}
    ready["llama-a"] = []  # the weights point at a Deployment with no ready replica
    assert {router.pick("Noel") for _ in range(5)} == {"http://b0"}
    holder["obj"] = {"data": {routing.DATA_KEY: "{not json"}, "metadata": {"resourceVersion": "3"}}
    assert router.table() == TABLE and router.malformed == 1  # the last good table is kept
    ready["llama-a"], ready["llama-b"] = [], []
    assert router.pick("Alan") is None


def test_routing_document_round_trips_and_bad_documents_name_the_field() -> None:
    assert routing.parse(TABLE.to_json()) == TABLE
    with pytest.raises(Exception, match=r"classes\[0\].rpm"):
        routing.parse(json.dumps({"pool": "p", "classes": [{"name": "a", "rpm": {"d": -1}}]}))


def test_update_schedules_hold_each_rate_until_the_next_update() -> None:
    alan, noel = update_schedules([{"time": 0, "request_rates": [10, 14]}, {"time": 1800, "request_rates": [15, 21]}],
                                  last_s=600)
    assert (alan.duration_s, alan.rate_at(10), alan.rate_at(1800), noel.rate_at(2399)) == (2400, 10 / 60, 0.25, 0.35)
    with pytest.raises(ValueError, match="times"):
        update_schedules([{"time": 5, "request_rates": [1]}], 10)


@pytest.mark.slow
def test_a_pool_in_the_cluster_routes_by_the_published_weights_with_priorities(tmp_path) -> None:
    updates = tmp_path / "updates.json"
    updates.write_text(json.dumps({"classes": ["Alan", "Noel"], "updates": [
        {"time": 0, "request_rates": [600, 600], "latencies": [10, 40]}]}))
    perf = {"alpha": 2, "beta": 0.01, "gamma": 0.0001}
    config = {
        "startup_delay_s": 0.1, "prometheus": False, "namespaces": ["llm"],
        "deployments": [{"name": name, "namespace": "llm", "model": "llama", "replicas": 1, "perf": perf,
                         "scheduling_policy": "priority"} for name in ("llama-a", "llama-b")],
        "pools": [{"name": "llama", "namespace": "llm", "deployments": ["llama-a", "llama-b"]}],
        "loads": [{"pool": "llama", "namespace": "llm", "updates": str(updates), "last_s": 2, "in_tokens": 8,
                   "out_tokens": 2}],
    }
    with Cluster(config) as cluster:
        table = routing.table_from_answer("llama", ["Alan", "Noel"], {"llama-a": [1.0, 0.0], "llama-b": [0.0, 1.0]})
        cluster.store.create("v1", "configmaps", "llm", routing.configmap("llm", table))
        assert [t.priority for t in cluster.targets] == [0, 1]
        reports = cluster.start_load().wait()
        assert reports["llm/llama/Alan"]["completed"] == reports["llm/llama/Alan"]["sent"] > 5
        served = {}
        for name in ("llama-a", "llama-b"):
            text = requests.get(cluster.endpoints("llm", name)[0] + "/metrics", timeout=5).text
            served[name] = sum(float(v) for v in re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)$", text,
                                                            flags=re.M))
        router = cluster.routers["llm", "llama"]
        assert served == {"llama-a": reports["llm/llama/Alan"]["completed"],
                          "llama-b": reports["llm/llama/Noel"]["completed"]}
        assert set(router.picks) == {("Alan", "llama-a"), ("Noel", "llama-b")}
