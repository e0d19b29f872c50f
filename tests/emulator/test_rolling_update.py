"""Pod template changes roll out by the Deployment's strategy: RollingUpdate (surge / unavailable bounds) or Recreate.

A PodWatch follows the Deployment's pods through the store's events (from a consistent listing on), so every
intermediate state of a rollout is seen, not just sampled ones.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from emulator import podtemplate
from emulator.kubestore import KubeStore
from emulator.reconciler import Reconciler, rollout_limits
from tests.emulator.test_reconciler import deployment, wait_for

APPS = "apps/v1"
NEW_ARGS = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "args": ["--max-num-seqs", "4"]}]}}}}


@pytest.fixture
def rolling():
    """(store, reconciler) with a 0.2 s start-up delay, stopped afterwards."""
    store = KubeStore()
    reconciler = Reconciler(store, startup_delay_s=0.2, grace_s=1).start()
    yield store, reconciler
    reconciler.stop()


class PodWatch:
    """Every state (pod count, ready count) of the namespace's pods, and the pod events with their template hash."""

    def __init__(self, store: KubeStore, namespace: str = "llm") -> None:
        self._lock = threading.Lock()
        pods, version = store.snapshot("v1", "pods", namespace)
        self._namespace = namespace
        self._pods = {p["metadata"]["name"]: p for p in pods}
        self.states: list[tuple[int, int]] = [self._state()]
        self.events: list[tuple[str, str]] = []  # (event type, pod-template-hash)
        self.statuses: list[dict] = []  # the Deployments' status writes
        self._unsubscribe = store.subscribe(self._on_event, since=version)

    def _state(self) -> tuple[int, int]:
        return len(self._pods), sum(_ready(p) for p in self._pods.values())

    def _on_event(self, event_type: str, api_version: str, plural: str, obj: dict) -> None:
        if obj["metadata"].get("namespace") != self._namespace:
            return
        with self._lock:
            if (api_version, plural) == (APPS, "deployments"):
                self.statuses.append(obj.get("status") or {})
            if (api_version, plural) != ("v1", "pods"):
                return
            name = obj["metadata"]["name"]
            if event_type == "DELETED":
                self._pods.pop(name, None)
            else:
                self._pods[name] = obj
            self.events.append((event_type, obj["metadata"]["labels"]["pod-template-hash"]))
            self.states.append(self._state())

    def stop(self) -> None:
        self._unsubscribe()

    def max_pods(self) -> int:
        with self._lock:
            return max(total for total, _ in self.states)

    def min_ready(self) -> int:
        with self._lock:
            return min(ready for _, ready in self.states)


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", ()))


def _hash(store: KubeStore) -> str:
    return podtemplate.template_hash(store.get(APPS, "deployments", "llm", "granite"))


def rolled_out(store: KubeStore, reconciler: Reconciler, replicas: int) -> bool:
    """True when every pod is ready and of the current template, the Deployment's status says so too."""
    pods = store.list("v1", "pods", "llm")
    current = _hash(store)
    status = store.get(APPS, "deployments", "llm", "granite").get("status") or {}
    return (len(pods) == replicas and all(_ready(p) for p in pods)
            and {p["metadata"]["labels"]["pod-template-hash"] for p in pods} <= {current}
            and len(reconciler.endpoints("llm", "granite")) == replicas
            and (status.get("updatedReplicas"), status.get("replicas"), status.get("readyReplicas"),
                 status.get("availableReplicas")) == (replicas, replicas, replicas, replicas))


def replicasets(store: KubeStore) -> dict[str, dict]:
    """The Deployment's ReplicaSets by pod-template-hash."""
    return {rs["metadata"]["labels"]["pod-template-hash"]: rs for rs in store.list(APPS, "replicasets", "llm")}


def start(store: KubeStore, reconciler: Reconciler, replicas: int, strategy: dict | None = None) -> str:
    """Create the Deployment (with ``strategy`` when given), wait for its replicas; returns the template hash."""
    obj = deployment(replicas=replicas)
    if strategy is not None:
        obj["spec"]["strategy"] = strategy
    store.create(APPS, "deployments", "llm", obj)
    assert reconciler.wait_ready("llm", "granite", replicas, timeout_s=5)
    assert wait_for(lambda: rolled_out(store, reconciler, replicas), timeout_s=5)
    return _hash(store)


def assert_finished(store: KubeStore, reconciler: Reconciler, replicas: int, old_hashes: list[str]) -> None:
    assert wait_for(lambda: rolled_out(store, reconciler, replicas), timeout_s=8)
    sets = replicasets(store)
    for old in old_hashes:
        assert sets[old]["spec"]["replicas"] == 0 and sets[old]["status"]["replicas"] == 0
    new = sets[_hash(store)]
    assert new["spec"]["replicas"] == replicas and new["status"]["readyReplicas"] == replicas
    obj = store.get(APPS, "deployments", "llm", "granite")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert [s.engine.params.max_num_seqs for s in reconciler.servers("llm", "granite")] == [4] * replicas


def test_rolling_update_with_defaults_stays_within_surge_and_unavailable(rolling):
    store, reconciler = rolling
    old = start(store, reconciler, 4)
    watch = PodWatch(store)
    store.patch(APPS, "deployments", "llm", "granite", NEW_ARGS, "strategic")
    assert_finished(store, reconciler, 4, [old])
    watch.stop()
    assert watch.max_pods() == 5 and watch.min_ready() >= 3  # 25% of 4: maxSurge 1, maxUnavailable 1
    assert watch.events[0] == ("ADDED", _hash(store))  # a new replica comes first
    assert any(0 < s.get("updatedReplicas", 0) < s.get("replicas", 0) for s in watch.statuses)
    # within maxUnavailable the Deployment stays Available all along, as in Kubernetes
    assert {s["conditions"][0]["status"] for s in watch.statuses if s.get("conditions")} == {"True"}


def test_rolling_update_without_surge_never_exceeds_the_replicas(rolling):
    store, reconciler = rolling
    old = start(store, reconciler, 4, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    watch = PodWatch(store)
    store.patch(APPS, "deployments", "llm", "granite", NEW_ARGS, "strategic")
    assert_finished(store, reconciler, 4, [old])
    watch.stop()
    assert watch.max_pods() == 4 and watch.min_ready() == 3
    assert watch.events[0] == ("DELETED", old)  # room first: an old replica goes


def test_recreate_removes_every_old_replica_before_starting_new_ones(rolling):
    store, reconciler = rolling
    old = start(store, reconciler, 4, {"type": "Recreate"})
    watch = PodWatch(store)
    store.patch(APPS, "deployments", "llm", "granite", NEW_ARGS, "strategic")
    assert_finished(store, reconciler, 4, [old])
    watch.stop()
    assert watch.events[:4] == [("DELETED", old)] * 4
    assert any(s.get("conditions", [{}])[0].get("status") == "False" for s in watch.statuses)  # all went at once
    assert {e for e in watch.events[4:] if e[1] == old} == set()
    assert watch.max_pods() == 4 and watch.min_ready() == 0


def test_a_second_template_change_during_a_rollout_converges(rolling):
    store, reconciler = rolling
    first = start(store, reconciler, 4)
    watch = PodWatch(store)
    store.patch(APPS, "deployments", "llm", "granite", NEW_ARGS, "strategic")
    assert wait_for(lambda: any(e == ("ADDED", _hash(store)) for e in list(watch.events)), timeout_s=5)
    second = _hash(store)
    store.patch(APPS, "deployments", "llm", "granite",
                {"spec": {"template": {"metadata": {"annotations": {"inferno.emulator/beta": "0.02"}}}}}, "merge")
    assert_finished(store, reconciler, 4, [first, second])
    watch.stop()
    assert watch.max_pods() <= 5 and watch.min_ready() >= 3


def test_scaling_without_a_template_change_does_not_roll(rolling):
    store, reconciler = rolling
    current = start(store, reconciler, 2)
    watch = PodWatch(store)
    store.patch(APPS, "deployments", "llm", "granite", {"spec": {"replicas": 5}}, "merge")
    assert wait_for(lambda: rolled_out(store, reconciler, 5))
    watch.stop()
    assert watch.events[:3] == [("ADDED", current)] * 3  # all at once, no surge limit
    assert list(replicasets(store)) == [current]


def test_endpoints_keep_answering_health_during_a_rolling_update(rolling):
    store, reconciler = rolling
    start(store, reconciler, 2)  # 25% of 2: maxSurge 1, maxUnavailable 0
    samples: list[tuple[int, bool]] = []
    done = threading.Event()

    def probe() -> None:
        with requests.Session() as session:
            while not done.is_set():
                urls = reconciler.endpoints("llm", "granite")
                answered = False
                for url in urls:
                    try:
                        answered = session.get(url + "/health", timeout=2).status_code == 200
                    except requests.ConnectionError:
                        continue  # removed and closed between the listing and the request
                    if answered:
                        break
                samples.append((len(urls), answered))
                time.sleep(0.005)

    watch = PodWatch(store)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        time.sleep(0.1)
        store.patch(APPS, "deployments", "llm", "granite", NEW_ARGS, "strategic")
        assert wait_for(lambda: rolled_out(store, reconciler, 2), timeout_s=8)
        time.sleep(0.1)
    finally:
        done.set()
        prober.join(timeout=5)
        watch.stop()
    assert watch.min_ready() == 2 and watch.max_pods() == 3
    assert len(samples) > 20
    assert min(count for count, _ in samples) >= 2
    assert all(answered for _, answered in samples)


@pytest.mark.parametrize(("replicas", "strategy", "expected"), [
    pytest.param(4, None, (1, 1), id="defaults-4"),
    pytest.param(2, None, (1, 0), id="defaults-2-round-surge-up-unavailable-down"),
    pytest.param(10, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 (3, 2), id="percent-10"),
    pytest.param(4, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}, (2, 0),
                 id="ints"),
    pytest.param(4, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, (0, 1),
                 id="both-zero"),
    pytest.param(3, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "10%"}},
                 (0, 1), id="both-round-to-zero"),
    pytest.param(4, {"type": "RollingUpdate"}, (1, 1), id="no-rollingUpdate"),
    pytest.param(4, {"type": "Recreate"}, None, id="recreate"),
])
def test_rollout_limits_resolve_like_kubernetes(replicas, strategy, expected):
    obj = deployment(replicas=replicas)
    if strategy is not None:
        obj["spec"]["strategy"] = strategy
    assert rollout_limits(obj, replicas) == expected
