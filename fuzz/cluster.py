"""An emulated cluster for the fuzz campaigns: the API emulator on 127.0.0.1 (with fault injection) holding
managed Deployments of the small sample set's servers, and an official-client ApiClient for it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubefaults import Faults
from emulator.kubestore import KubeStore
from services.core import labels as lb
from services.runtime.kube import load_api_client

NAMESPACE = "llm"
SERVERS = (("premium-llama", "llama_13b", "Premium"), ("bronze-granite", "granite_13b", "Bronze"),
           ("free-mixtral", "mixtral_8_7b", "Free"), ("premium-granite", "granite_13b", "Premium"))
"""(server name, model, class) of the managed Deployments: the small sample set's models and classes."""
UNMANAGED = "unmanaged"


def managed_labels(name: str, model: str, service_class: str) -> dict[str, str]:
    """A managed Deployment's labels with load labels (so it is sized without metrics)."""
    return {lb.MANAGED: "true", lb.NAME: name, lb.MODEL: model, lb.CLASS: service_class,
            lb.ACCELERATOR: "A100", lb.MAX_BATCH: "16", lb.LOAD_RPM: "30", lb.LOAD_IN_TOKENS: "128",
            lb.LOAD_OUT_TOKENS: "512"}


def add_deployment(store: KubeStore, name: str, labels: Mapping[str, str], replicas: int = 2) -> dict:
    """A Deployment ``name`` (selector app=name) with ``labels``, written straight into ``store``."""
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]}}}}
    return store.create("apps/v1", "deployments", NAMESPACE, body)


@dataclass
class Cluster:
    """The store, the fault rules and a client of one emulated cluster."""

    store: KubeStore
    faults: Faults
    api: client.ApiClient


@contextmanager
def emulated_cluster(seed: int) -> Iterator[Cluster]:
    """A running emulated cluster with the SERVERS' Deployments and one unmanaged Deployment."""
    store = KubeStore()
    for name, model, service_class in SERVERS:
        add_deployment(store, name, managed_labels(name, model, service_class))
    add_deployment(store, UNMANAGED, {"app": UNMANAGED})
    faults = Faults(seed=seed)
    with KubeApiServer(store, faults=faults) as server, tempfile.TemporaryDirectory(prefix="fuzz-kube-") as tmp:
        api = load_api_client(write_kubeconfig(str(Path(tmp) / "kubeconfig"), server.url))
        try:
            yield Cluster(store, faults, api)
        finally:
            api.close()
