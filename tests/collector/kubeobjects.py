"""Kubernetes objects for the collector tests, written straight into the emulator's store."""

from __future__ import annotations

from services.core import labels as lb

LABELS = {lb.MANAGED: "true", lb.NAME: "premium-llama", lb.MODEL: "llama", lb.CLASS: "Premium",
          lb.ACCELERATOR: "A100", lb.MAX_BATCH: "16", lb.LOAD_RPM: "30", lb.LOAD_IN_TOKENS: "100",
          lb.LOAD_OUT_TOKENS: "50"}


def _template(app: str, gpus: int = 0) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm", "ports": [{"containerPort": 8000}],
                                     "resources": resources}]}}


def add_deployment(store, ns: str, name: str, replicas: int = 2, labels: dict | None = None) -> dict:
    """A Deployment (selector app=name) with ``labels``; returns the stored object."""
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": dict(LABELS if labels is None else labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": _template(name)}}
    return store.create("apps/v1", "deployments", ns, body)


def add_replica_set(store, deployment: dict, name: str) -> dict:
    """A ReplicaSet owned by ``deployment``."""
    meta = deployment["metadata"]
    body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"],
                 "controller": True}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": meta["name"]}},
                     "template": _template(meta["name"])}}
    return store.create("apps/v1", "replicasets", meta["namespace"], body)


def add_pod(store, ns: str, name: str, owner: dict | None, app: str, *, phase: str = "Running", ip: str = "10.0.0.1",
            node: str = "node-1", gpus: int = 0, annotations: dict | None = None) -> dict:
    """A Pod labelled app=``app``, owned by ReplicaSet ``owner`` (None = no owner), Ready when Running."""
    owners = [] if owner is None else [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app}, "ownerReferences": owners,
                         "annotations": annotations or {}},
            "spec": {**_template(app, gpus)["spec"], "nodeName": node}}
    store.create("v1", "pods", ns, body)
    status = {"phase": phase, "podIP": ip,
              "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}]}
    return store.update_status("v1", "pods", ns, name, status)


def add_node(store, name: str, labels: dict, allocatable: dict) -> dict:
    """A Node with ``labels`` and ``allocatable`` resources."""
    store.create("v1", "nodes", None, {"apiVersion": "v1", "kind": "Node",
                                               "metadata": {"name": name, "labels": labels}})
    return store.update_status("v1", "nodes", None, name, {"allocatable": allocatable, "capacity": allocatable})


def set_ready_replicas(store, ns: str, name: str, ready: int) -> None:
    """Write a Deployment's status.readyReplicas."""
    store.update_status("apps/v1", "deployments", ns, name, {"readyReplicas": ready, "replicas": ready})
