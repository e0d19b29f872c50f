"""The pool router (emulator/router.py): each class's requests go to the Deployments of the pool in proportion to
the routing weights annotated on them, with the class's priority, and new weights take effect at once."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter

import pytest
import requests

from emulator.cluster import Cluster
from emulator.loadshape import update_schedules
from emulator.router import PoolRouter
from services.core import routing

TABLE = routing.table_from_answer("llama", ["Alan", "Noel"], {"llama-a": [9.0, 1.0], "llama-b": [1.0, 0.0]})


def _notes(table: routing.RoutingTable) -> dict[str, str]:
    return {d: routing.annotation_for(table, d) for d in ("llama-a", "llama-b")}


def _router(table: routing.RoutingTable | None, ready: dict[str, list[str]]) -> tuple[PoolRouter, dict]:
    holder = {"notes": {} if table is None else _notes(table)}
    return PoolRouter("llama", sorted(ready), lambda d: ready[d], lambda: holder["notes"], seed=1), holder


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
    holder["notes"] = _notes(TABLE)
    ready["llama-a"] = []  # the weights point at a Deployment with no ready replica
    assert {router.pick("Noel") for _ in range(5)} == {"http://b0"}
    holder["notes"] = {**_notes(TABLE), "llama-b": "{not json"}
    assert router.table() == TABLE and router.malformed == 1  # the last good table is kept
    ready["llama-a"], ready["llama-b"] = [], []
    assert router.pick("Alan") is None


def test_routing_document_round_trips_and_bad_documents_name_the_field() -> None:
    assert routing.parse(TABLE.to_json()) == TABLE
    assert routing.merge("llama", _notes(TABLE)) == TABLE
    assert json.loads(routing.annotation_for(TABLE, "llama-b"))["classes"][0]["rpm"] == {"llama-b": 1.0}
    with pytest.raises(Exception, match=r"classes\[0\].rpm"):
        routing.parse(json.dumps({"pool": "p", "classes": [{"name": "a", "rpm": {"d": -1}}]}))


def test_update_schedules_hold_each_rate_until_the_next_update() -> None:
    alan, noel = update_schedules([{"time": 0, "request_rates": [10, 14]}, {"time": 1800, "request_rates": [15, 21]}],
                                  last_s=600)
    assert (alan.duration_s, alan.rate_at(10), alan.rate_at(1800), noel.rate_at(2399)) == (2400, 10 / 60, 0.25, 0.35)
    with pytest.raises(ValueError, match="times"):
        update_schedules([{"time": 5, "request_rates": [1]}], 10)


def _count(router: PoolRouter, objective: str, priority: str, deployment: str) -> float:
    return router.registry.get_sample_value("inference_objective_request_total",
                                            {"objective": objective, "priority": priority,
                                             "deployment": deployment}) or 0.0


def test_every_routed_request_is_counted_per_class_priority_and_deployment_and_served_to_prometheus() -> None:
    ready = {"llama-a": ["http://a0"], "llama-b": ["http://b0"]}
    holder = {"notes": {}}
    router = PoolRouter("llama", sorted(ready), lambda d: ready[d], lambda: holder["notes"], seed=1,
                        classes=["Alan", "Noel"])
    for _ in range(4):  # no weights yet: round-robin, the priority is the class's position
        router.pick("Noel")
    assert _count(router, "Noel", "1", "llama-a") == _count(router, "Noel", "1", "llama-b") == 2
    holder["notes"] = _notes(TABLE)
    picks = Counter(router.pick("Alan") for _ in range(500))
    assert _count(router, "Alan", "0", "llama-a") == picks["http://a0"] > 400
    assert _count(router, "Alan", "0", "llama-b") == picks["http://b0"]
    router.pick("Other")  # a class the table and the pool do not know: counted without a priority
    assert sum(_count(router, "Other", "", d) for d in ready) == 1
    port = router.serve()
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        router.stop()
    assert re.search(r'^inference_objective_request_total\{deployment="llama-a",objective="Noel",priority="1"\} 2\.0$',
                     text, flags=re.M)
    assert "# TYPE inference_objective_request_total counter" in text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus binary is not installed")
def test_prometheus_scrapes_the_pool_routers_per_class_counters_with_namespace_and_pool() -> None:
    perf = {"alpha": 2, "beta": 0.01, "gamma": 0.0001}
    config = {
        "startup_delay_s": 0.1, "scrape_interval_s": 0.5, "namespaces": ["llm"],
        "deployments": [{"name": "llama-a", "namespace": "llm", "model": "llama", "replicas": 1, "perf": perf,
                         "scheduling_policy": "priority"}],
        "pools": [{"name": "llama", "namespace": "llm", "deployments": ["llama-a"], "classes": ["Alan", "Noel"]}],
        "loads": [{"pool": "llama", "namespace": "llm", "class": name, "in_tokens": 8, "out_tokens": 2,
                   "phases": [{"rate_rps": rate, "duration_s": 3}]} for name, rate in (("Alan", 4), ("Noel", 8))],
    }
    with Cluster(config) as cluster:
        reports = cluster.start_load().wait()
        sent = {name: reports[f"llm/llama/{name}"]["sent"] for name in ("Alan", "Noel")}
        assert sent["Noel"] > sent["Alan"] > 5
        query = 'sum by (objective, priority) (inference_objective_request_total{namespace="llm", pool="llama"})'
        deadline = time.monotonic() + 20
        seen: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            seen = {(r["metric"]["objective"], r["metric"]["priority"]): float(r["value"][1])
                    for r in cluster.prometheus.query(query)}
            if seen == {("Alan", "0"): sent["Alan"], ("Noel", "1"): sent["Noel"]}:
                break
            time.sleep(0.5)
        assert seen == {("Alan", "0"): sent["Alan"], ("Noel", "1"): sent["Noel"]}
