"""The resource types the emulated Kubernetes API serves: kinds, scopes, verbs and discovery documents."""

from __future__ import annotations

from dataclasses import dataclass

_ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource type, e.g. apps/v1 deployments."""

    api_version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False
    custom: bool = False

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """The plural qualified with its group, as the API's error messages spell it: "deployments.apps"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """The kind qualified with its group, as validation errors spell it: "Deployment.apps"."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES: tuple[Resource, ...] = (
    Resource("v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status",)),
    Resource("v1", "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    Resource("v1", "pods", "Pod", short_names=("po",), subresources=("status",)),
    Resource("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("v1", "events", "Event", short_names=("ev",)),
    Resource("apps/v1", "deployments", "Deployment", short_names=("deploy",), subresources=("scale", "status"),
             has_generation=True),
    Resource("apps/v1", "replicasets", "ReplicaSet", short_names=("rs",), subresources=("scale", "status"),
             has_generation=True),
    Resource("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
             subresources=("status",), has_generation=True),
    Resource("keda.sh/v1alpha1", "scaledobjects", "ScaledObject", short_names=("so",), subresources=("status",),
             has_generation=True, custom=True),
)

_BY_KEY = {(r.api_version, r.plural): r for r in RESOURCES}


def find_resource(api_version: str, plural: str) -> Resource | None:
    """The served resource type, or None when (api_version, plural) is not served."""
    return _BY_KEY.get((api_version, plural))


def api_versions() -> list[str]:
    """Every served group/version, core "v1" first."""
    return list(dict.fromkeys(r.api_version for r in RESOURCES))


def resource_list(api_version: str) -> dict | None:
    """The APIResourceList discovery document of one group/version, or None when it is not served."""
    served = [r for r in RESOURCES if r.api_version == api_version]
    if not served:
        return None
    resources = []
    for r in served:
        resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                          "kind": r.kind, "verbs": list(_ALL_VERBS), "shortNames": list(r.short_names)})
        for sub in r.subresources:
            entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                     "kind": r.kind, "verbs": ["get", "patch", "update"]}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version, "resources": resources}


def api_group(name: str) -> dict | None:
    """The APIGroup discovery document of a named group, or None when it is not served."""
    versions = [v for v in api_versions() if v.rpartition("/")[0] == name and name]
    if not versions:
        return None
    entries = [{"groupVersion": v, "version": v.rpartition("/")[2]} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries,
            "preferredVersion": entries[0]}


def api_group_list() -> dict:
    """The APIGroupList served at /apis."""
    groups = dict.fromkeys(v.rpartition("/")[0] for v in api_versions() if "/" in v)
    body = [api_group(g) for g in groups]
    for group in body:
        del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": body}
