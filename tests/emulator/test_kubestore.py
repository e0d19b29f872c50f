"""The emulated cluster's store as the reconciler uses it directly: ordered events, re-entrant subscribers."""

from __future__ import annotations

import pytest

from emulator.kubestore import ConflictError, InvalidError, KubeStore, NotFoundError

DEPLOYMENT = {"metadata": {"name": "granite"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "granite"}},
                       "template": {"metadata": {"labels": {"app": "granite"}}}}}


def test_a_subscriber_that_writes_sees_its_own_events_after_the_one_it_reacted_to() -> None:
    store, seen = KubeStore(), []

    def reconcile(event_type: str, api_version: str, plural: str, obj: dict) -> None:
        if (event_type, plural) == ("ADDED", "deployments"):
            store.create("apps/v1", "replicasets", "llm", {
                "metadata": {"name": "granite-rs", "ownerReferences": [{"uid": obj["metadata"]["uid"]}]},
                "spec": DEPLOYMENT["spec"]})

    store.subscribe(reconcile)
    store.subscribe(lambda event_type, _, plural, obj: seen.append(
        (event_type, plural, obj["metadata"]["resourceVersion"])))
    store.create("apps/v1", "deployments", "llm", DEPLOYMENT)
    store.delete("apps/v1", "deployments", "llm", "granite")
    assert [(e, p) for e, p, _ in seen] == [("ADDED", "namespaces"), ("ADDED", "deployments"),
                                           ("ADDED", "replicasets"), ("DELETED", "deployments"),
                                           ("DELETED", "replicasets")]
    assert [int(v) for _, _, v in seen] == sorted(int(v) for _, _, v in seen)
    with pytest.raises(NotFoundError):
        store.get("apps/v1", "replicasets", "llm", "granite-rs")


def test_subscribing_since_a_version_replays_the_later_events_once() -> None:
    store, seen = KubeStore(), []
    first = store.create("apps/v1", "deployments", "llm", DEPLOYMENT)["metadata"]["resourceVersion"]
    store.patch("apps/v1", "deployments", "llm", "granite", {"spec": {"replicas": 2}}, "merge")
    unsubscribe = store.subscribe(lambda e, _, __, obj: seen.append((e, obj["spec"]["replicas"])), since=first)
    store.patch("apps/v1", "deployments", "llm", "granite", {"spec": {"replicas": 3}}, "strategic")
    unsubscribe()
    store.patch("apps/v1", "deployments", "llm", "granite", {"spec": {"replicas": 4}}, "merge")
    assert seen == [("MODIFIED", 2), ("MODIFIED", 3)]


def test_status_updates_keep_the_generation_and_stale_updates_conflict() -> None:
    store = KubeStore()
    created = store.create("apps/v1", "deployments", "llm", DEPLOYMENT)
    status = store.update_status("apps/v1", "deployments", "llm", "granite", {"readyReplicas": 1})
    assert status["metadata"]["generation"] == 1 and status["status"] == {"readyReplicas": 1}
    with pytest.raises(ConflictError) as conflict:
        store.update("apps/v1", "deployments", "llm", "granite", created)
    assert conflict.value.status["reason"] == "Conflict"
    with pytest.raises(InvalidError):
        store.patch("apps/v1", "deployments", "llm", "granite", {"spec": {"replicas": -1}}, "merge")
