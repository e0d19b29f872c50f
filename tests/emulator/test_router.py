"""The pool router (emulator/router.py): each class's requests go to the Deployments of the pool in proportion to
the routing weights annotated on them, with the class's priority, and new weights take effect at once."""

from __future__ import annotations

import json
from collections import Counter

import pytest

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
