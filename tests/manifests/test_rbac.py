"""The RBAC rules equal the lists kept beside the code that calls the Kubernetes API."""

from __future__ import annotations

from services.actuator import rbac as actuator_rbac
from services.collector import rbac as collector_rbac
from tests.manifests.conftest import MANIFESTS, find, settings_of
from tests.manifests.rendering import render

CLUSTER_SCOPED_RESOURCES = {("", "nodes"), ("", "namespaces"), ("", "persistentvolumes")}
"""Resources a namespaced Role cannot grant."""


def granted(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    """(API group, resource) -> verbs, from Kubernetes PolicyRules."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames or nonResourceURLs expected"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def needed() -> dict[tuple[str, str], set[str]]:
    """The union of the collector's and the actuator's RULES."""
    out: dict[tuple[str, str], set[str]] = {}
    for group, resource, verbs in (*collector_rbac.RULES, *actuator_rbac.RULES):
        out.setdefault((group, resource), set()).update(verbs)
    return out


def test_the_cluster_role_grants_exactly_what_the_collector_and_actuator_call(base_objects):
    assert granted(find(base_objects, "ClusterRole", "inferno")["rules"]) == needed()


def test_only_the_capacity_from_nodes_install_may_list_nodes_and_it_turns_the_setting_on(base_objects,
                                                                                          deployment):
    nodes = render(MANIFESTS / "capacity-from-nodes")
    assert granted(find(nodes, "ClusterRole", "inferno-nodes")["rules"]) == {
        (group, resource): set(verbs) for group, resource, verbs in collector_rbac.NODE_RULES}
    binding = find(nodes, "ClusterRoleBinding", "inferno-nodes")
    assert binding["roleRef"]["name"] == "inferno-nodes"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "inferno", "namespace": "inferno"}]
    assert ("", "nodes") not in granted(find(base_objects, "ClusterRole", "inferno")["rules"])
    assert settings_of(base_objects, deployment)["INFERNO_CAPACITY_FROM_NODES"] == "false"
    nodes_deployment = find(nodes, "Deployment", "inferno")
    assert settings_of(nodes, nodes_deployment)["INFERNO_CAPACITY_FROM_NODES"] == "true"


def test_the_namespaced_role_grants_exactly_the_namespaced_part_of_it(namespaced_objects):
    expected = {key: verbs for key, verbs in needed().items() if key not in CLUSTER_SCOPED_RESOURCES}
    assert granted(find(namespaced_objects, "Role", "inferno")["rules"]) == expected


def test_no_rule_grants_wildcards_or_write_verbs_beyond_patch_and_creating_events(base_objects, namespaced_objects):
    roles = [find(base_objects, "ClusterRole"), find(namespaced_objects, "Role")]
    for role in roles:
        for (group, resource), verbs in granted(role["rules"]).items():
            assert "*" not in (group, resource, *verbs)
            allowed = {"create"} if (group, resource) == ("", "events") else {"get", "list", "patch"}
            assert verbs <= allowed, f"{resource}: {verbs}"


def test_each_binding_binds_its_role_to_the_inferno_service_account(base_objects, namespaced_objects):
    pairs = [(find(base_objects, "ClusterRoleBinding"), find(base_objects, "ClusterRole")),
             (find(namespaced_objects, "RoleBinding"), find(namespaced_objects, "Role"))]
    for binding, role in pairs:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "inferno", "namespace": "inferno"}]
        assert binding["metadata"].get("namespace") == role["metadata"].get("namespace")
