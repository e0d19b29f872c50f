"""The Kubernetes API rules the collector needs (kept beside sources.py and capacity.py, which call the API).

The manifests test checks that the ClusterRole grants at least these. Each rule: (API group, resource, verbs).
"""

from __future__ import annotations

RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("apps", "deployments", ("list",)),
    ("apps", "replicasets", ("list",)),
    ("", "pods", ("list",)),
)
"""list_namespaced_deployment / list_deployment_for_all_namespaces, list_namespaced_replica_set,
list_namespaced_pod and list_pod_for_all_namespaces (capacity from Nodes)."""

NODE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "nodes", ("list",)),
)
"""list_node, only with INFERNO_CAPACITY_FROM_NODES (granted by manifests/capacity-from-nodes/ alone)."""
