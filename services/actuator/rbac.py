"""The Kubernetes API rules the actuator needs (kept beside kube.py, the code that calls the API).

The manifests test checks that the ClusterRole grants at least these. Each rule: (API group, resource, verbs).
"""

from __future__ import annotations

RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("apps", "deployments", ("get", "patch")),
    ("apps", "deployments/scale", ("patch",)),
    ("autoscaling", "horizontalpodautoscalers", ("list",)),
    ("keda.sh", "scaledobjects", ("list",)),
    ("", "events", ("create",)),
)
"""read_namespaced_deployment, patch_namespaced_deployment, patch_namespaced_deployment_scale,
list_namespaced_horizontal_pod_autoscaler, list_namespaced_custom_object(keda.sh scaledobjects) and
create_namespaced_event (services/actuator/events.py)."""
