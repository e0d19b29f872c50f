"""KubeSource and NodeCapacitySource against the emulated Kubernetes API through the official client."""

from __future__ import annotations

import pytest

from services.collector import capacity as cap
from services.collector.sources import KubeSource
from services.core import model as m
from services.core.errors import UnavailableError
from tests.collector.kubeobjects import (
    add_deployment,
    add_node,
    add_pod,
    add_replica_set,
    set_ready_replicas,
)

STATIC = m.SystemData(accelerators=(m.Accelerator("A100", "A100"), m.Accelerator("MI300X", "MI300X")))


def test_managed_deployments_with_replicas_and_pods_through_replica_set_owners(kube):
    store, api = kube
    d = add_deployment(store, "llm", "granite", replicas=3)
    set_ready_replicas(store, "llm", "granite", 2)
    rs = add_replica_set(store, d, "granite-abc")
    add_pod(store, "llm", "granite-abc-1", rs, "granite", ip="10.0.0.1",
            annotations={"prometheus.io/port": "9100", "prometheus.io/path": "/m"})
    add_pod(store, "llm", "granite-abc-2", rs, "granite", phase="Pending", ip="")
    add_pod(store, "llm", "granite-abc-3", rs, "granite", phase="Succeeded")
    add_pod(store, "llm", "impostor", None, "granite")  # matches the selector, owned by nobody
    add_deployment(store, "llm", "unmanaged", labels={"app": "x"})
    [facts] = KubeSource(api).deployments()
    assert (facts.ref.namespace, facts.ref.name, facts.ref.uid) == ("llm", "granite", d["metadata"]["uid"])
    assert (facts.spec_replicas, facts.ready_replicas) == (3, 2)
    assert facts.labels["inferno.server.name"] == "premium-llama"
    assert [(p.name, p.ip, p.ready, p.metrics_port, p.metrics_path) for p in facts.pods] == [
        ("granite-abc-1", "10.0.0.1", True, 9100, "/m"), ("granite-abc-2", "", False, 8000, "/metrics")]


def test_pods_of_the_old_and_new_replica_sets_both_count(kube):
    store, api = kube
    d = add_deployment(store, "llm", "granite")
    add_pod(store, "llm", "old-1", add_replica_set(store, d, "granite-old"), "granite")
    add_pod(store, "llm", "new-1", add_replica_set(store, d, "granite-new"), "granite")
    [facts] = KubeSource(api).deployments()
    assert [p.name for p in facts.pods] == ["new-1", "old-1"]


def test_namespaces_limit_discovery(kube):
    store, api = kube
    add_deployment(store, "a", "one")
    add_deployment(store, "b", "two")
    add_deployment(store, "c", "three")
    source = KubeSource(api)
    assert sorted(f.ref.name for f in source.deployments()) == ["one", "three", "two"]
    assert sorted(f.ref.name for f in source.deployments(["a", "c"])) == ["one", "three"]


def test_unreachable_api_raises_unavailable(dead_api):
    with pytest.raises(UnavailableError, match="cannot list managed Deployments"):
        KubeSource(dead_api, timeout_s=1.0).deployments()


def test_node_capacity_counts_free_cards_per_type_and_leaves_managed_pods_cards_available(kube):
    store, api = kube
    add_node(store, "gpu-1", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, {"nvidia.com/gpu": "8"})
    add_node(store, "gpu-2", {"amd.com/gpu.product-name": "MI300X"}, {"amd.com/gpu": "4"})
    add_node(store, "gpu-3", {"nvidia.com/gpu.product": "Tesla-T4"}, {"nvidia.com/gpu": "2"})
    add_node(store, "cpu-1", {}, {"cpu": "16"})
    add_pod(store, "other", "training", None, "t", node="gpu-1", gpus=3)
    add_pod(store, "other", "finished", None, "t", node="gpu-1", gpus=5, phase="Succeeded")
    add_pod(store, "llm", "server-pod", None, "s", node="gpu-1", gpus=2)
    source = cap.NodeCapacitySource(api)
    counts, warnings = source.capacity(STATIC, {("llm", "server-pod")})
    assert dict(counts.counts) == {"A100": 5, "MI300X": 4, "Tesla-T4": 2}
    assert warnings == ["node gpu-3: GPU product 'Tesla-T4' matches no accelerator type in the data; "
                        "counted as 'Tesla-T4'"]


def test_node_labels_setting_maps_a_node_to_an_accelerator_type(kube):
    store, api = kube
    add_node(store, "gpu-1", {"pool": "fast", "gpu.intel.com/product": "Max_1550"}, {"gpu.intel.com/i915": "2"})
    static = m.SystemData(accelerators=(m.Accelerator("2xPVC", "PVC", multiplicity=2),))
    counts, warnings = cap.NodeCapacitySource(api, {"2xPVC": {"pool": "fast"}}).capacity(static, set())
    assert dict(counts.counts) == {"PVC": 2} and warnings == []


def test_unreachable_api_is_a_capacity_warning(dead_api):
    counts, warnings = cap.NodeCapacitySource(dead_api, timeout_s=1.0).capacity(STATIC, set())
    assert counts.counts == {} and "capacity from Nodes not read" in warnings[0]
