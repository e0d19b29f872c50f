"""The kubelet- and controller-like reconciler: Deployments in the store become running emulated vLLM replicas.

For each Deployment it keeps one ReplicaSet per pod template (named ``{deployment}-{template hash}``, owned by
the Deployment; older ones stay, scaled to 0, like a rollout's history) and one emulated replica
(emulator/vllm.py, its own 127.0.0.1 port) per desired replica, shown as a Pod owned by the ReplicaSet: the
template's labels (plus ``pod-template-hash``) and annotations, the port as containerPort and annotation
``inferno.emulator/port``, podIP 127.0.0.1, phase Pending for the start-up delay, then Running and Ready.
Scaling (spec.replicas) adds replicas or removes not-yet-ready pods first, then the newest; a removed Pod
leaves the store (and the endpoints) at once while its replica finishes its in-flight requests for at most
the grace period. A Pod deleted by someone else is replaced (one of an old template is not).

A pod template change rolls out by spec.strategy: ``Recreate`` removes every old-template replica at once and
starts the new ones; ``RollingUpdate`` (the default) replaces them gradually like the Deployment controller,
with maxSurge (rounded up) and maxUnavailable (rounded down) taken from integers or percentages of
spec.replicas (25% each when absent; maxUnavailable 1 when both resolve to 0): new replicas are added while
old + new stay within replicas + maxSurge, and old ones are removed (not-ready ones first) only while the
ready replicas stay at or above replicas - maxUnavailable, counting a new replica only once it is ready.
Each pass repeats these steps until nothing changes; the rollout then waits for the next new replica to
become ready (the worker wakes up for it). Every ReplicaSet's spec.replicas follows the number of its pods
(old ones end at 0), and its status (replicas, readyReplicas, availableReplicas) those pods' readiness.
The Deployment's status has replicas, updatedReplicas (pods of the current template), readyReplicas,
availableReplicas, unavailableReplicas, observedGeneration and the Available condition (True while ready
replicas >= replicas - maxUnavailable, so also during a rolling update; Recreate: all). Parameters read
from the pod template: see emulator/podtemplate.py. Ready replicas are written to the Prometheus file_sd
file (labels namespace, pod, deployment) when ``sd_path`` is given, after ``static_groups`` (other targets to
scrape, e.g. the pool routers', emulator/router.py).

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
_MAX_ROLL_STEPS = 1000
"""A guard: one pass of a rollout never takes more steps (each step adds, removes or promotes a replica)."""
_DEFAULT_ROLLING = "25%"
"""maxSurge and maxUnavailable when absent."""


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
        self.static_groups: list[dict] = []
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
        limits = rollout_limits(deployment, desired)
        rs_name = podtemplate.replicaset_name(deployment)
        for replica in self._mine(namespace, name):
            if not self._pod_exists(replica):
                self._remove(replica)
        alive = self._mine(namespace, name)
        old = [r for r in alive if r.replicaset != rs_name]
        owned = self._owned_replicasets(deployment)
        if old and limits is not None:
            surge = limits[0]
            first = min(desired, max(desired + surge - len(alive), 0))
            self._ensure_replicaset(deployment, owned, rs_name, first, only_create=True)
            self._roll(deployment, owned, rs_name, desired, *limits)
        else:  # plain scaling, or a Recreate rollout: every old-template replica goes at once
            self._remove_pods(owned, old)
            replicaset = self._ensure_replicaset(deployment, owned, rs_name, desired)
            current = self._mine(namespace, name)
            for _ in range(desired - len(current)):
                self._add(deployment, replicaset)
            self._remove_pods(owned, sorted(current, key=_removal_order)[:max(len(current) - desired, 0)],
                              scale=False)
            self._promote(self._mine(namespace, name))
        self._sync_old_replicasets(owned, rs_name, self._mine(namespace, name))
        self._write_status(deployment, owned, rs_name, desired)

    def _roll(self, deployment: dict, owned: dict[str, dict], rs_name: str, desired: int, surge: int,
              unavailable: int) -> None:
        """RollingUpdate steps (the Deployment controller's, per pod) until none changes anything."""
        meta = deployment["metadata"]
        min_ready = max(desired - unavailable, 0)
        for _ in range(_MAX_ROLL_STEPS):
            changed = self._promote(self._mine(meta["namespace"], meta["name"]))
            mine = self._mine(meta["namespace"], meta["name"])
            new = [r for r in mine if r.replicaset == rs_name]
            if len(new) > desired:
                self._remove_pods(owned, sorted(new, key=_removal_order)[:len(new) - desired])
                changed = True
            else:
                count = min(desired - len(new), max(desired + surge - len(mine), 0))
                if count:
                    replicaset = self._ensure_replicaset(deployment, owned, rs_name, len(new) + count)
                    for _ in range(count):
                        self._add(deployment, replicaset)
                    changed = True
            mine = self._mine(meta["namespace"], meta["name"])
            old = [r for r in mine if r.replicaset != rs_name]
            new_unready = sum(not r.ready for r in mine if r.replicaset == rs_name)
            budget = len(mine) - min_ready - new_unready
            if old and budget > 0:
                unready = sorted((r for r in old if not r.ready), key=_removal_order)[:budget]
                removable = sum(r.ready for r in mine) - min_ready
                ready = sorted((r for r in old if r.ready), key=_removal_order)[:max(removable, 0)]
                if unready or ready:
                    self._remove_pods(owned, unready + ready)
                    changed = True
            if not changed:
                return
        _log.warning("rollout_step_limit namespace=%s deployment=%s", meta["namespace"], meta["name"])

    def _mine(self, namespace: str, name: str) -> list[_Replica]:
        with self._lock:
            return [r for r in self._replicas.values() if (r.namespace, r.deployment) == (namespace, name)]

    def _pod_exists(self, replica: _Replica) -> bool:
        try:
            self.store.get("v1", "pods", replica.namespace, replica.pod)
        except NotFoundError:
            return False
        return True

    def _owned_replicasets(self, deployment: dict) -> dict[str, dict]:
        """The Deployment's ReplicaSets by name."""
        uid = deployment["metadata"]["uid"]
        return {rs["metadata"]["name"]: rs for rs in self.store.list(_APPS, "replicasets",
                                                                      deployment["metadata"]["namespace"])
                if uid in {ref.get("uid") for ref in rs["metadata"].get("ownerReferences") or ()}}

    def _ensure_replicaset(self, deployment: dict, owned: dict[str, dict], rs_name: str, replicas: int,
                           only_create: bool = False) -> dict:
        """The current template's ReplicaSet, created or scaled (unless ``only_create``) to ``replicas``."""
        if rs_name not in owned:
            owned[rs_name] = self.store.create(_APPS, "replicasets", deployment["metadata"]["namespace"],
                                               podtemplate.replicaset_for(deployment, replicas))
        elif not only_create:
            self._scale_replicaset(owned, rs_name, replicas)
        return owned[rs_name]

    def _scale_replicaset(self, owned: dict[str, dict], rs_name: str, replicas: int) -> None:
        replicaset = owned.get(rs_name)
        if replicaset is not None and replicaset["spec"].get("replicas") != replicas:
            owned[rs_name] = self.store.patch(_APPS, "replicasets", replicaset["metadata"]["namespace"], rs_name,
                                              {"spec": {"replicas": replicas}}, "merge")

    def _sync_old_replicasets(self, owned: dict[str, dict], rs_name: str, replicas: list[_Replica]) -> None:
        """Scale every old ReplicaSet to the number of its pods still there (0 once the rollout is done)."""
        for name in sorted(owned):
            if name != rs_name:
                self._scale_replicaset(owned, name, sum(r.replicaset == name for r in replicas))

    def _remove_pods(self, owned: dict[str, dict], replicas: list[_Replica], scale: bool = True) -> None:
        """Remove ``replicas``, scaling their ReplicaSets down first (when ``scale``) by what each loses."""
        if not replicas:
            return
        if scale:
            mine = self._mine(replicas[0].namespace, replicas[0].deployment)
            for name in sorted({r.replicaset for r in replicas}):
                self._scale_replicaset(owned, name, sum(r.replicaset == name for r in mine)
                                       - sum(r.replicaset == name for r in replicas))
        for replica in replicas:
            self._remove(replica)

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

    def _promote(self, replicas: list[_Replica]) -> bool:
        """Mark the replicas whose start-up delay is over Running and Ready; True when there was one."""
        now = self._clock()
        promoted = False
        for replica in replicas:
            if not replica.ready and replica.ready_at <= now:
                self.store.update_status("v1", "pods", replica.namespace, replica.pod, podtemplate.pod_status(True))
                with self._lock:
                    replica.ready = True
                promoted = True
        return promoted

    def _write_status(self, deployment: dict, owned: dict[str, dict], rs_name: str, desired: int) -> None:
        meta = deployment["metadata"]
        replicas = self._mine(meta["namespace"], meta["name"])
        for name, replicaset in sorted(owned.items()):
            pods = [r for r in replicas if r.replicaset == name]
            ready = sum(r.ready for r in pods)
            rs_status = {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                         "fullyLabeledReplicas": len(pods),
                         "observedGeneration": replicaset["metadata"].get("generation", 1)}
            if replicaset.get("status") != rs_status:
                owned[name] = self.store.update_status(_APPS, "replicasets", meta["namespace"], name, rs_status)
        ready = sum(r.ready for r in replicas)
        counts = {"replicas": len(replicas), "readyReplicas": ready, "availableReplicas": ready}
        limits = rollout_limits(deployment, desired)  # Available as in Kubernetes: at most maxUnavailable short
        available = "True" if ready >= desired - min(limits[1] if limits else 0, desired) else "False"
        status = {**counts, "updatedReplicas": sum(r.replicaset == rs_name for r in replicas),
                  "observedGeneration": meta.get("generation", 1),
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
            groups = [*self.static_groups,
                      *(sd_target(r.server.port, {"namespace": r.namespace, "pod": r.pod, "deployment": r.deployment})
                        for r in sorted(self._replicas.values(), key=lambda r: (r.namespace, r.pod)) if r.ready)]
        if groups != self._sd_written:
            write_file_sd(self.sd_path, groups)
            self._sd_written = groups


def _drainer(server: VllmServer, grace_s: float) -> threading.Thread:
    """A started thread that drains ``server`` for at most ``grace_s`` and stops it."""
    thread = threading.Thread(target=server.stop, args=(grace_s,), name=f"vllm-drain-{server.port}", daemon=True)
    thread.start()
    return thread


def rollout_limits(deployment: dict, desired: int) -> tuple[int, int] | None:
    """(maxSurge, maxUnavailable) of a RollingUpdate Deployment resolved against ``desired``; None for Recreate.

    Integers or percentages of ``desired`` (maxSurge rounded up, maxUnavailable down), 25% when absent or
    malformed; maxUnavailable is 1 when both resolve to 0, as in Kubernetes.
    """
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return None
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge"), desired, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _scaled(value: object, desired: int, round_up: bool) -> int:
    """An IntOrString (``2`` or ``"25%"``) resolved against ``desired``."""
    if value is None:
        value = _DEFAULT_ROLLING
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    text = str(value).strip()
    try:
        if not text.endswith("%"):
            return max(int(text), 0)
        percent = int(text[:-1])
    except ValueError:
        _log.warning("invalid_rolling_update_value value=%r (using %s)", value, _DEFAULT_ROLLING)
        percent = int(_DEFAULT_ROLLING[:-1])
    scaled = -(-percent * desired // 100) if round_up else percent * desired // 100
    return max(scaled, 0)


def _removal_order(replica: _Replica) -> tuple[bool, float]:
    """Sort key of replicas to remove: not-ready ones first, then the newest."""
    return replica.ready, -replica.ready_at
