"""Kubernetes I/O of the collector: managed Deployments with their replica counts and pods.

Managed Deployments carry ``inferno.server.managed=true`` and live in the requested namespaces (all when
none are given). Their pods are found through owner references, Deployment -> ReplicaSet -> Pod, not
through the selector (which can match pods of other Deployments). The rules this needs are in rbac.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from services.collector.aggregate import DeploymentFacts, PodFacts
from services.core.errors import UnavailableError
from services.core.labels import MANAGED_SELECTOR
from services.core.model import KubeRef

PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
_DONE_PHASES = ("Succeeded", "Failed")


def _owner_uids(obj: Any, kind: str) -> set[str]:
    return {o.uid for o in (obj.metadata.owner_references or []) if o.kind == kind}


def _metrics_port(pod: Any) -> int:
    annotations = pod.metadata.annotations or {}
    if str(annotations.get(PORT_ANNOTATION, "")).isdigit():
        return int(annotations[PORT_ANNOTATION])
    for container in pod.spec.containers or []:
        for port in container.ports or []:
            return int(port.container_port)
    return 0


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _startup_s(pod: Any) -> float | None:
    """Seconds from the pod's creation to its Ready condition turning True; None when not Ready or unknown."""
    created = pod.metadata.creation_timestamp
    conditions = (pod.status.conditions if pod.status else None) or []
    ready = next((c.last_transition_time for c in conditions if c.type == "Ready" and c.status == "True"), None)
    if created is None or ready is None:
        return None
    seconds = (ready - created).total_seconds()
    return seconds if seconds >= 0 else None


def pod_facts(pod: Any) -> PodFacts:
    """A V1Pod -> PodFacts: IP, readiness and the metrics endpoint (``prometheus.io/port`` and
    ``prometheus.io/path`` annotations, else the first container port and /metrics)."""
    annotations = pod.metadata.annotations or {}
    return PodFacts(name=pod.metadata.name, ip=(pod.status.pod_ip if pod.status else None) or "",
                    ready=_ready(pod), metrics_port=_metrics_port(pod),
                    metrics_path=annotations.get(PATH_ANNOTATION) or "/metrics", startup_s=_startup_s(pod))


def _live(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return phase not in _DONE_PHASES and pod.metadata.deletion_timestamp is None


class KubeSource:
    """Reads managed Deployments, their ReplicaSets and Pods through the official client."""

    def __init__(self, api_client: client.ApiClient, timeout_s: float = 10.0) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._timeout_s = timeout_s

    def _list(self, namespaced: Any, cluster_wide: Any, namespace: str | None, **kwargs: Any) -> list:
        kwargs["_request_timeout"] = self._timeout_s
        reply = cluster_wide(**kwargs) if namespace is None else namespaced(namespace, **kwargs)
        return list(reply.items)

    def _pods_by_deployment(self, namespace: str, deployment_uids: set[str]) -> dict[str, list[PodFacts]]:
        sets = self._list(self._apps.list_namespaced_replica_set, None, namespace)
        owner_of_set = {rs.metadata.uid: uid for rs in sets for uid in _owner_uids(rs, "Deployment")
                        if uid in deployment_uids}
        pods: dict[str, list[PodFacts]] = {}
        for pod in self._list(self._core.list_namespaced_pod, None, namespace):
            for rs_uid in _owner_uids(pod, "ReplicaSet"):
                if rs_uid in owner_of_set and _live(pod):
                    pods.setdefault(owner_of_set[rs_uid], []).append(pod_facts(pod))
        return pods

    def deployments(self, namespaces: Iterable[str] = ()) -> list[DeploymentFacts]:
        """Managed Deployments in ``namespaces`` (empty = all), each with labels, spec replicas (default
        1), ready replicas and live pods (sorted by name). Raises UnavailableError when the API fails."""
        try:
            found = []
            for namespace in sorted(set(namespaces)) or [None]:
                found.extend(self._list(self._apps.list_namespaced_deployment,
                                        self._apps.list_deployment_for_all_namespaces, namespace,
                                        label_selector=MANAGED_SELECTOR))
            return self._with_pods(found)
        except (ApiException, HTTPError, OSError) as err:
            raise UnavailableError(f"Kubernetes API: cannot list managed Deployments: {_reason(err)}") from err

    def _with_pods(self, deployments: Sequence[Any]) -> list[DeploymentFacts]:
        facts = []
        for namespace in sorted({d.metadata.namespace for d in deployments}):
            here = [d for d in deployments if d.metadata.namespace == namespace]
            pods = self._pods_by_deployment(namespace, {d.metadata.uid for d in here})
            for d in here:
                spec_replicas = d.spec.replicas if d.spec and d.spec.replicas is not None else 1
                ready = (d.status.ready_replicas if d.status else None) or 0
                facts.append(DeploymentFacts(
                    ref=KubeRef(namespace, d.metadata.name, d.metadata.uid or ""),
                    labels=dict(d.metadata.labels or {}), spec_replicas=spec_replicas, ready_replicas=ready,
                    pods=tuple(sorted(pods.get(d.metadata.uid, []), key=lambda p: p.name))))
        return facts


def _reason(err: Exception) -> str:
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}"
    return f"{type(err).__name__}: {str(err)[:200]}"
