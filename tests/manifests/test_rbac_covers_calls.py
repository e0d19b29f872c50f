"""The RBAC manifests allow every Kubernetes API call the collector and the actuator actually make.

The collector (KubeSource, NodeCapacitySource, through Collector.collect) and the actuator (KubeActuator:
dry run, label / pod template patch, scale, HPA- and KEDA-owned and vanished Deployments) run against the
emulated API server with its request record on; every recorded request (RBAC verb, API group, resource or
resource/subresource, namespace) must be allowed by the ClusterRole of manifests/rbac/ and, for a
single-namespace install (WATCH_NAMESPACE set, capacity from the data file), by the Role of
manifests/rbac-namespaced/ in its namespace. Rules are matched as Kubernetes' RBAC authorizer does.
"""

from __future__ import annotations

import pytest

from emulator.kubeapi import KubeApiServer, KubeRequest, write_kubeconfig
from emulator.kubestore import KubeStore
from services.actuator import plan as p
from services.actuator.kube import KubeActuator
from services.collector.capacity import NodeCapacitySource
from services.collector.collect import Collector
from services.collector.sources import KubeSource
from services.core import labels as lb
from services.core.model import ActuationOutcome, Allocation, KubeRef, ManagedServer, Server
from services.runtime.kube import load_api_client
from tests.collector.fakes import FixedMetrics, write_data
from tests.collector.kubeobjects import LABELS, add_deployment, add_node, add_pod, add_replica_set
from tests.manifests.conftest import MANIFESTS, find
from tests.manifests.rendering import render

OTHER_NS = "other"
"""A namespace a cluster-wide install also sees (the namespaced install must not touch it)."""


# --- RBAC rule matching, as k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac (rbac.RuleAllows) ---------------

def _has(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(rule_resources: list[str], request: KubeRequest) -> bool:
    for resource in rule_resources:
        if resource in ("*", request.rbac_resource):
            return True
        if request.subresource and resource == f"*/{request.subresource}":
            return True
    return False


def rule_allows(rule: dict, request: KubeRequest) -> bool:
    """Whether one PolicyRule allows a resource request."""
    names = rule.get("resourceNames") or []
    return (_has(rule.get("verbs") or [], request.verb)
            and _has(rule.get("apiGroups") or [], request.group)
            and _resource_matches(rule.get("resources") or [], request)
            and (not names or request.name in names))


def allowed(role: dict, request: KubeRequest) -> bool:
    """Whether a ClusterRole (bound cluster-wide) or a Role (in its own namespace) allows ``request``."""
    if role["kind"] == "Role" and request.namespace != role["metadata"]["namespace"]:
        return False
    return any(rule_allows(rule, request) for rule in role.get("rules") or [])


def test_rule_matching_follows_kubernetes() -> None:
    deployments = KubeRequest("patch", "apps", "v1", "deployments", "", "ns", "d")
    scale = KubeRequest("patch", "apps", "v1", "deployments", "scale", "ns", "d")
    rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}
    assert rule_allows(rule, deployments) and not rule_allows(rule, scale)
    assert rule_allows({**rule, "resources": ["deployments/scale"]}, scale)
    assert rule_allows({**rule, "resources": ["*/scale"]}, scale)
    assert rule_allows({**rule, "resources": ["*"]}, scale)
    assert not rule_allows({**rule, "apiGroups": [""]}, deployments)
    assert rule_allows({**rule, "apiGroups": ["*"], "verbs": ["*"]}, deployments)
    assert not rule_allows({**rule, "verbs": ["get", "list"]}, deployments)
    assert rule_allows({**rule, "resourceNames": ["d"]}, deployments)
    assert not rule_allows({**rule, "resourceNames": ["e"]}, deployments)
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "ns"}, "rules": [rule]}
    assert allowed(role, deployments)
    assert not allowed(role, KubeRequest("patch", "apps", "v1", "deployments", "", "elsewhere", "d"))
    assert not allowed(role, KubeRequest("patch", "apps", "v1", "deployments", "", "", ""))


# --- The calls -------------------------------------------------------------------------------------------------

def _managed(store, ns: str, name: str, replicas: int, *, accelerator: str = "L40") -> None:
    """A managed Deployment with one ReplicaSet and one running pod on a GPU node."""
    deployment = add_deployment(store, ns, name, replicas, labels={**LABELS, lb.NAME: name,
                                                                   lb.ACCELERATOR: accelerator,
                                                                   lb.MAX_BATCH: "16"})
    replica_set = add_replica_set(store, deployment, f"{name}-rs")
    add_pod(store, ns, f"{name}-pod", replica_set, name, gpus=1)


def populate(store, ns: str) -> None:
    """Managed Deployments in ``ns`` (one free, one HPA-owned, one KEDA-owned), one in OTHER_NS and a GPU node."""
    for name in ("granite", "hpa-owned", "keda-owned"):
        _managed(store, ns, name, 2)
    _managed(store, OTHER_NS, "elsewhere", 1)
    add_deployment(store, ns, "unmanaged", 1, labels={"app": "unmanaged"})
    add_node(store, "gpu-1", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, {"nvidia.com/gpu": "8"})
    store.create("autoscaling/v2", "horizontalpodautoscalers", ns, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpa-owned"},
                 "minReplicas": 1, "maxReplicas": 4}})
    store.create("keda.sh/v1alpha1", "scaledobjects", ns, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "keda"},
        "spec": {"scaleTargetRef": {"name": "keda-owned"}, "triggers": []}})


def actuate(api, ns: str, *, dry_run: bool) -> list:
    """The actuator on ``ns``'s Deployments plus a vanished one: A100 x3 for each, template rewritten too."""
    settings = p.PlanSettings(accelerator_node_labels={"A100": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
                              set_max_num_seqs=True)
    names = ("granite", "hpa-owned", "keda-owned", "vanished")
    allocations = {n: Allocation(accelerator="A100", num_replicas=3, max_batch=32) for n in names}
    return KubeActuator(api, settings).actuate([ManagedServer(Server(n), KubeRef(ns, n)) for n in names],
                                               allocations, dry_run)


def observe(tmp_path, ns: str, *, watch_namespaces: tuple[str, ...], capacity_from_nodes: bool) -> list[KubeRequest]:
    """Run the collector and the actuator as the given install would, and return the requests they made."""
    store = KubeStore()
    populate(store, ns)
    with KubeApiServer(store, record_requests=True) as server:
        api = load_api_client(write_kubeconfig(str(tmp_path / "kubeconfig"), server.url))
        try:
            nodes = NodeCapacitySource(api) if capacity_from_nodes else None
            collector = Collector(KubeSource(api), FixedMetrics(), write_data(tmp_path),
                                  watch_namespaces=watch_namespaces, nodes=nodes)
            collected = collector.collect()
            collector.collect([ns])
            dry = actuate(api, ns, dry_run=True)
            wet = actuate(api, ns, dry_run=False)
        finally:
            api.close()
        requests = server.requests()
    # the calls did what the scenario intends, so the record covers the write paths too
    assert {s.name for s in collected.servers} >= {"granite", "hpa-owned", "keda-owned"}
    assert [c.outcome for c in dry] == [ActuationOutcome.CHANGED, *[ActuationOutcome.SKIPPED] * 3]
    assert [c.outcome for c in wet] == [ActuationOutcome.CHANGED, *[ActuationOutcome.SKIPPED] * 3]
    assert wet[0].patches and wet[0].scales
    deployment = store.get("apps/v1", "deployments", ns, "granite")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["labels"][lb.ACCELERATOR] == "A100"
    return requests


def keys(requests: list[KubeRequest]) -> set[tuple[str, str, str]]:
    """(verb, API group, resource[/subresource]) of each request."""
    return {(r.verb, r.group, r.rbac_resource) for r in requests}


def granted(role: dict) -> set[tuple[str, str, str]]:
    """(verb, API group, resource) of each permission a role spells out (no wildcards expected)."""
    return {(verb, group, resource) for rule in role["rules"] for verb in rule["verbs"]
            for group in rule["apiGroups"] for resource in rule["resources"]}


MUST_SEE = {("list", "apps", "deployments"), ("get", "apps", "deployments"), ("patch", "apps", "deployments"),
            ("patch", "apps", "deployments/scale"), ("list", "autoscaling", "horizontalpodautoscalers"),
            ("list", "keda.sh", "scaledobjects"), ("list", "apps", "replicasets"), ("list", "", "pods"),
            ("create", "", "events")}
"""Calls the scenarios must have made, so that the checks below cannot pass on an empty record."""


@pytest.fixture(scope="module")
def cluster_wide_calls(tmp_path_factory) -> list[KubeRequest]:
    """Calls of a cluster-wide install: all namespaces, capacity from the data file."""
    return observe(tmp_path_factory.mktemp("cluster-wide"), "llm", watch_namespaces=(), capacity_from_nodes=False)


@pytest.fixture(scope="module")
def nodes_calls(tmp_path_factory) -> list[KubeRequest]:
    """Calls of the capacity-from-nodes install: all namespaces, capacity from the Nodes."""
    return observe(tmp_path_factory.mktemp("nodes"), "llm", watch_namespaces=(), capacity_from_nodes=True)


@pytest.fixture(scope="module")
def nodes_objects() -> list[dict]:
    """What `kubectl apply -k manifests/capacity-from-nodes/` creates."""
    return render(MANIFESTS / "capacity-from-nodes")


@pytest.fixture(scope="module")
def namespaced_calls(tmp_path_factory, namespaced_objects) -> list[KubeRequest]:
    """Calls of the single-namespace install: WATCH_NAMESPACE = the Role's namespace, capacity from the file."""
    ns = find(namespaced_objects, "Role", "inferno")["metadata"]["namespace"]
    return observe(tmp_path_factory.mktemp("namespaced"), ns, watch_namespaces=(ns,), capacity_from_nodes=False)


def test_the_scenarios_make_the_calls_that_matter(cluster_wide_calls, namespaced_calls, nodes_calls) -> None:
    assert keys(cluster_wide_calls) >= MUST_SEE
    assert ("list", "", "nodes") not in keys(cluster_wide_calls), "Nodes are read only with capacity from nodes"
    assert keys(nodes_calls) >= MUST_SEE | {("list", "", "nodes")}
    assert keys(namespaced_calls) >= MUST_SEE
    assert any(r.namespace == "" and r.resource == "deployments" for r in cluster_wide_calls), \
        "the cluster-wide collector lists Deployments across namespaces"


def test_the_cluster_role_allows_every_call(base_objects, cluster_wide_calls, namespaced_calls) -> None:
    role = find(base_objects, "ClusterRole", "inferno")
    denied = sorted({r for r in (*cluster_wide_calls, *namespaced_calls) if not allowed(role, r)},
                    key=lambda r: (r.group, r.rbac_resource, r.verb, r.namespace))
    assert not denied, "calls the ClusterRole does not allow (403 on a cluster): " + ", ".join(
        f"{r.verb} {r.group or 'core'}/{r.rbac_resource} in {r.namespace or '<cluster>'}" for r in denied)


def test_the_namespaced_role_allows_every_call_of_a_single_namespace_install(namespaced_objects,
                                                                            namespaced_calls) -> None:
    role = find(namespaced_objects, "Role", "inferno")
    denied = sorted({r for r in namespaced_calls if not allowed(role, r)},
                    key=lambda r: (r.group, r.rbac_resource, r.verb, r.namespace))
    assert not denied, f"calls the Role in {role['metadata']['namespace']} does not allow: " + ", ".join(
        f"{r.verb} {r.group or 'core'}/{r.rbac_resource} in {r.namespace or '<cluster>'}" for r in denied)


def test_the_capacity_from_nodes_install_allows_every_call_of_its_collector(nodes_objects, nodes_calls) -> None:
    roles = [find(nodes_objects, "ClusterRole", "inferno"), find(nodes_objects, "ClusterRole", "inferno-nodes")]
    denied = sorted({r for r in nodes_calls if not any(allowed(role, r) for role in roles)},
                    key=lambda r: (r.group, r.rbac_resource, r.verb, r.namespace))
    assert not denied, ", ".join(f"{r.verb} {r.group or 'core'}/{r.rbac_resource}" for r in denied)


def test_every_permission_granted_is_used_by_some_call(base_objects, namespaced_objects, nodes_objects,
                                                       cluster_wide_calls, namespaced_calls, nodes_calls) -> None:
    """The converse, so the roles stay least-privilege: nothing granted that no call needs."""
    assert granted(find(base_objects, "ClusterRole", "inferno")) - keys(cluster_wide_calls) == set()
    assert granted(find(namespaced_objects, "Role", "inferno")) - keys(namespaced_calls) == set()
    assert granted(find(nodes_objects, "ClusterRole", "inferno-nodes")) - keys(nodes_calls) == set()

