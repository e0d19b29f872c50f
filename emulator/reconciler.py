"""The kubelet- and controller-like reconciler: Deployments in the store become running emulated vLLM replicas.

For each Deployment it keeps one ReplicaSet per pod template (named ``{deployment}-{template hash}``, owned by
the Deployment; older ones are scaled to 0 like a rollout's history) and one emulated replica
(emulator/vllm.py, its own 127.0.0.1 port) per desired replica, shown as a Pod owned by the ReplicaSet: the
template's labels (plus ``pod-template-hash``) and annotations, the port as containerPort and annotation
``inferno.emulator/port``, podIP 127.0.0.1, phase Pending for the start-up delay, then Running and Ready.
The Deployment's and ReplicaSet's status (replicas, readyReplicas, availableReplicas) follow. Scaling down
removes not-yet-ready pods first, then the newest; a removed Pod leaves the store (and the endpoints) at once
while its replica finishes its in-flight requests for at most the grace period. A Pod deleted by someone
else is replaced. Parameters read from the pod template: see emulator/podtemplate.py. Ready replicas are
written to the Prometheus file_sd file (labels namespace, pod, deployment) when ``sd_path`` is given.

Store callbacks only queue the Deployment's key; one worker thread does all the work.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from emulator import podtemplate
from emulator.kubeerrors import NotFoundError
from emulator.kubestore import KubeStore
from emulator.prometheus import sd_target, write_file_sd
from emulator.vllm import VllmServer

_log = logging.getLogger(__name__)
_APPS = "apps/v1"
_IDLE_WAIT_S = 0.5


@dataclass(eq=False)
class _Replica:
    namespace: str
    deployment: str
    replicaset: str
    pod: str
    server: VllmServer
    ready_at: float
    ready: bool = False


class Reconciler:
    """Keeps emulated replicas in line with the Deployments of ``store``; start() and stop() it."""

    def __init__(self, store: KubeStore, *, startup_delay_s: float = 1.0, grace_s: float = 30.0,
                 time_scale: float = 1.0, sd_path: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.startup_delay_s, self.grace_s, self.time_scale = startup_delay_s, grace_s, time_scale
        self.sd_path = sd_path
        self._clock = clock
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._replicas: dict[str, _Replica] = {}  # by "namespace/pod"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drainers: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._sd_written: list[dict] | None = None

    def start(self) -> Reconciler:
        """Subscribe to the store, queue every existing Deployment, start the worker thread."""
        self._unsubscribe = self.store.subscribe(self._on_event)
        for deployment in self.store.list(_APPS, "deployments"):
            self._queue.put((deployment["metadata"]["namespace"], deployment["metadata"]["name"]))
        self._write_sd()
        self._thread = threading.Thread(target=self._run, name="emulator-reconciler", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace_s: float = 0.0) -> None:
        """Stop reconciling and stop every replica (each drains for at most ``grace_s``)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            replicas, self._replicas = list(self._replicas.values()), {}
        for replica in replicas:
            self._drainers.append(_drainer(replica.server, grace_s))
        for thread in self._drainers:
            thread.join(timeout=grace_s + 10)
        self._drainers.clear()

    def endpoints(self, namespace: str, deployment: str) -> list[str]:
        """Base URLs of the Deployment's ready replicas (what its Service would route to)."""
        with self._lock:
            return sorted(r.server.url for r in self._replicas.values()
                          if r.ready and (r.namespace, r.deployment) == (namespace, deployment))

    def servers(self, namespace: str, deployment: str) -> list[VllmServer]:
        """The Deployment's replica servers, ready or not (for inspection)."""
        with self._lock:
            return [r.server for r in self._replicas.values() if (r.namespace, r.deployment) == (namespace, deployment)]

    def wait_ready(self, namespace: str, deployment: str, count: int, timeout_s: float = 30.0) -> bool:
        """Wait until exactly ``count`` replicas of the Deployment are ready; True when they are."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if len(self.endpoints(namespace, deployment)) == count and \
                    len(self.servers(namespace, deployment)) == count:
                return True
            time.sleep(0.05)
        return False

    def _on_event(self, event_type: str, api_version: str, plural: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        if (api_version, plural) == (_APPS, "deployments"):
            self._queue.put((meta.get("namespace"), meta.get("name")))
        elif (api_version, plural) == ("v1", "pods") and event_type == "DELETED":
            with self._lock:
                replica = self._replicas.get(f"{meta.get('namespace')}/{meta.get('name')}")
            if replica is not None:
                self._queue.put((replica.namespace, replica.deployment))

    def _run(self) -> None:
        while not self._stop.is_set():
            keys = self._next_keys()
            for key in keys:
                if self._stop.is_set():
                    return
                try:
                    self._reconcile(*key)
                except Exception:  # noqa: BLE001 - one bad Deployment never stops the others
                    _log.exception("reconcile_failed namespace=%s deployment=%s", *key)
            self._write_sd()

    def _next_keys(self) -> set[tuple[str, str]]:
        """Wait for queued keys or the next pending pod's start; returns the Deployments to reconcile."""
        with self._lock:
            pending = [r.ready_at for r in self._replicas.values() if not r.ready]
        timeout = max(min(pending) - self._clock(), 0.0) if pending else _IDLE_WAIT_S
        items = []
        try:
            items.append(self._queue.get(timeout=min(timeout, _IDLE_WAIT_S)))
            while True:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        keys = {item for item in items if item}
        now = self._clock()
        with self._lock:
            keys |= {(r.namespace, r.deployment) for r in self._replicas.values() if not r.ready and r.ready_at <= now}
        return keys

    def _reconcile(self, namespace: str, name: str) -> None:
        try:
            deployment = self.store.get(_APPS, "deployments", namespace, name)
        except NotFoundError:
            for replica in self._mine(namespace, name):
                self._remove(replica)
            return
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        replicaset = self._ensure_replicaset(deployment, desired)
        rs_name = replicaset["metadata"]["name"]
        for replica in self._mine(namespace, name):
            if replica.replicaset != rs_name or not self._pod_exists(replica):
                self._remove(replica)
        current = self._mine(namespace, name)
        for _ in range(desired - len(current)):
            self._add(deployment, replicaset)
        surplus = sorted(current, key=lambda r: (r.ready, -r.ready_at))[:max(len(current) - desired, 0)]
        for replica in surplus:
            self._remove(replica)
        self._promote(self._mine(namespace, name))
        self._write_status(deployment, replicaset, desired)

    def _mine(self, namespace: str, name: str) -> list[_Replica]:
        with self._lock:
            return [r for r in self._replicas.values() if (r.namespace, r.deployment) == (namespace, name)]

    def _pod_exists(self, replica: _Replica) -> bool:
        try:
            self.store.get("v1", "pods", replica.namespace, replica.pod)
        except NotFoundError:
            return False
        return True

    def _ensure_replicaset(self, deployment: dict, desired: int) -> dict:
        wanted = podtemplate.replicaset_for(deployment, desired)
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        uid = deployment["metadata"]["uid"]
        for old in self.store.list(_APPS, "replicasets", namespace):
            owners = {ref.get("uid") for ref in old["metadata"].get("ownerReferences") or ()}
            if uid in owners and old["metadata"]["name"] != name and old["spec"].get("replicas"):
                self.store.patch(_APPS, "replicasets", namespace, old["metadata"]["name"],
                                 {"spec": {"replicas": 0}}, "merge")
        try:
            current = self.store.get(_APPS, "replicasets", namespace, name)
        except NotFoundError:
            return self.store.create(_APPS, "replicasets", namespace, wanted)
        if current["spec"].get("replicas") != desired:
            current = self.store.patch(_APPS, "replicasets", namespace, name, {"spec": {"replicas": desired}}, "merge")
        return current

    def _add(self, deployment: dict, replicaset: dict) -> None:
        params = podtemplate.engine_params(deployment, self.time_scale)
        server = VllmServer(params, podtemplate.model_name(deployment)).start()
        pod = self.store.create("v1", "pods", replicaset["metadata"]["namespace"],
                                podtemplate.pod_for(replicaset, server.port))
        delay = podtemplate.startup_delay_s(deployment, self.startup_delay_s)
        replica = _Replica(pod["metadata"]["namespace"], deployment["metadata"]["name"],
                           replicaset["metadata"]["name"], pod["metadata"]["name"], server, self._clock() + delay)
        with self._lock:
            self._replicas[f"{replica.namespace}/{replica.pod}"] = replica

    def _remove(self, replica: _Replica) -> None:
        with self._lock:
            self._replicas.pop(f"{replica.namespace}/{replica.pod}", None)
        try:
            self.store.delete("v1", "pods", replica.namespace, replica.pod)
        except NotFoundError:
            pass
        self._drainers = [t for t in self._drainers if t.is_alive()]
        self._drainers.append(_drainer(replica.server, self.grace_s))

    def _promote(self, replicas: list[_Replica]) -> None:
        now = self._clock()
        for replica in replicas:
            if not replica.ready and replica.ready_at <= now:
                self.store.update_status("v1", "pods", replica.namespace, replica.pod, podtemplate.pod_status(True))
                with self._lock:
                    replica.ready = True

    def _write_status(self, deployment: dict, replicaset: dict, desired: int) -> None:
        meta = deployment["metadata"]
        replicas = self._mine(meta["namespace"], meta["name"])
        ready = sum(r.ready for r in replicas)
        counts = {"replicas": len(replicas), "readyReplicas": ready, "availableReplicas": ready}
        rs_status = {**counts, "fullyLabeledReplicas": len(replicas),
                     "observedGeneration": replicaset["metadata"].get("generation", 1)}
        if replicaset.get("status") != rs_status:
            self.store.update_status(_APPS, "replicasets", meta["namespace"], replicaset["metadata"]["name"],
                                     rs_status)
        available = "True" if ready >= desired else "False"
        status = {**counts, "updatedReplicas": len(replicas), "observedGeneration": meta.get("generation", 1),
                  "conditions": [{"type": "Available", "status": available,
                                  "reason": "MinimumReplicasAvailable" if available == "True"
                                  else "MinimumReplicasUnavailable"}]}
        if desired > ready:
            status["unavailableReplicas"] = desired - ready
        if deployment.get("status") != status:
            self.store.update_status(_APPS, "deployments", meta["namespace"], meta["name"], status)

    def _write_sd(self) -> None:
        if not self.sd_path:
            return
        with self._lock:
            groups = [sd_target(r.server.port, {"namespace": r.namespace, "pod": r.pod, "deployment": r.deployment})
                      for r in sorted(self._replicas.values(), key=lambda r: (r.namespace, r.pod)) if r.ready]
        if groups != self._sd_written:
            write_file_sd(self.sd_path, groups)
            self._sd_written = groups


def _drainer(server: VllmServer, grace_s: float) -> threading.Thread:
    """A started thread that drains ``server`` for at most ``grace_s`` and stops it."""
    thread = threading.Thread(target=server.stop, args=(grace_s,), name=f"vllm-drain-{server.port}", daemon=True)
    thread.start()
    return thread
