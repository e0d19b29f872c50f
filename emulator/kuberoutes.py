"""Requests of the emulated Kubernetes API: URL paths to resources, and each verb answered from the store.

``route()`` maps a path such as /apis/apps/v1/namespaces/llm/deployments/x/scale to a Route; ``answer()``
serves one non-watch request on a Route and returns the HTTP code and JSON body (a Status on errors).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator import kubepatch, kuberesources
from emulator.kubeerrors import BadRequestError, InvalidError, NotFoundError, StoreError, status_body
from emulator.kuberesources import Resource
from emulator.kubeselect import SelectorError, parse_field_selector, selector_string
from emulator.kubestore import KubeStore
from emulator.kubevalidate import replicas_causes

VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-inferno-emulator", "gitCommit": "", "gitTreeState":
           "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
           "platform": "linux/amd64"}
PATCH_TYPES = {"application/strategic-merge-patch+json": "strategic", "application/merge-patch+json": "merge",
               "application/json-patch+json": "json"}


@dataclass(frozen=True, slots=True)
class Route:
    """A request path resolved to a resource type and, where given, a namespace, an object and a subresource."""

    resource: Resource
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def not_found_path() -> StoreError:
    """The 404 the API server answers for a path it does not serve."""
    return NotFoundError(status_body(404, "NotFound", "the server could not find the requested resource", {}))


def discovery(path: str, server_address: str) -> dict | None:
    """The discovery document at ``path`` (/version, /api, /apis, /api/v1, /apis/apps/v1...), or None."""
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return dict(VERSION)
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}
    if parts == ["apis"]:
        return kuberesources.api_group_list()
    if parts == ["api", "v1"]:
        return kuberesources.resource_list("v1")
    if len(parts) == 2 and parts[0] == "apis":
        return kuberesources.api_group(parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return kuberesources.resource_list(f"{parts[1]}/{parts[2]}")
    return None


def route(path: str) -> Route:
    """The Route of a resource path; raises the API server's 404 for a path it does not serve."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        api_version, rest = "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise not_found_path()
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        nested = kuberesources.find_resource(api_version, rest[2])
        if nested is not None and nested.namespaced:
            namespace, rest = rest[1], rest[2:]
    resource = kuberesources.find_resource(api_version, rest[0]) if rest else None
    if resource is None or len(rest) > 3 or (len(rest) == 3 and rest[2] not in resource.subresources):
        raise not_found_path()
    return Route(resource, namespace, *rest[1:])


def answer(store: KubeStore, method: str, where: Route, query: Mapping[str, str], content_type: str,
           body: Any) -> tuple[int, dict]:
    """Serve one non-watch request; returns (HTTP code, JSON body). StoreError carries the error answers."""
    r, ns, name = where.resource, where.namespace, where.name
    if name is None:
        if method == "GET":
            return 200, list_body(store, where, query)
        if method == "POST":
            return 201, store.create(r.api_version, r.plural, ns, _object(body))
    elif where.subresource == "scale":
        return 200, _scale(store, method, where, content_type, body)
    elif method == "GET":
        return 200, store.get(r.api_version, r.plural, ns, name)
    elif where.subresource == "status" and method in ("PUT", "PATCH"):
        change = _patcher(r, content_type, body) if method == "PATCH" else (lambda current: _object(body))
        return 200, store.write_status(r.api_version, r.plural, ns, name, change)
    elif method == "PUT":
        return 200, store.update(r.api_version, r.plural, ns, name, _object(body))
    elif method == "PATCH":
        return 200, store.write(r.api_version, r.plural, ns, name, _patcher(r, content_type, body))
    elif method == "DELETE":
        deleted = store.delete(r.api_version, r.plural, ns, name)
        return 200, deleted if r.plural == "pods" else _deleted_status(r, deleted)
    raise StoreError(status_body(405, "MethodNotAllowed", f"the server does not allow this method on the "
                                 f"requested resource ({method})", {}))


def list_body(store: KubeStore, where: Route, query: Mapping[str, str]) -> dict:
    """The List object of a collection GET, filtered by labelSelector and fieldSelector."""
    r = where.resource
    items, version = store.snapshot(r.api_version, r.plural, where.namespace, query.get("labelSelector"))
    matches = field_matcher(query)
    items = [item for item in items if matches(item)]
    if not r.custom:
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
    return {"apiVersion": r.api_version, "kind": f"{r.kind}List", "metadata": {"resourceVersion": version},
            "items": items}


def field_matcher(query: Mapping[str, str]) -> Callable[[Mapping[str, Any]], bool]:
    """The predicate of the request's fieldSelector; BadRequestError when it does not parse."""
    try:
        return parse_field_selector(query.get("fieldSelector"))
    except SelectorError as err:
        raise BadRequestError.of(str(err)) from err


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequestError.of("the body of the request must be a JSON object")
    return body


def _deleted_status(resource: Resource, deleted: dict) -> dict:
    details = {"name": deleted["metadata"]["name"], **({"group": resource.group} if resource.group else {}),
               "kind": resource.plural, "uid": deleted["metadata"]["uid"]}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _patch_type(resource: Resource, content_type: str) -> str:
    patch_type = PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
    if patch_type is None or (patch_type == "strategic" and resource.custom):
        accepted = [t for t, k in PATCH_TYPES.items() if k != "strategic" or not resource.custom]
        raise StoreError(status_body(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                     f"format - accepted media types include: {', '.join(accepted)}", {}))
    return patch_type


def _patcher(resource: Resource, content_type: str, patch: Any) -> Callable[[dict], dict]:
    return kubepatch.patcher(patch, _patch_type(resource, content_type))


def scale_of(obj: dict) -> dict:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_string(obj.get("spec", {}).get("selector"))}}


def _scale(store: KubeStore, method: str, where: Route, content_type: str, body: Any) -> dict:
    r, name = where.resource, where.name or ""
    if method == "GET":
        return scale_of(store.get(r.api_version, r.plural, where.namespace, name))
    if method == "PUT":
        def wanted(current: dict) -> dict:
            return _object(body)
    elif method == "PATCH":
        patcher = _patcher(r, content_type, body)

        def wanted(current: dict) -> dict:
            return patcher(scale_of(current))
    else:
        raise StoreError(status_body(405, "MethodNotAllowed", f"{method} is not allowed on scale", {}))

    def change(current: dict) -> dict:
        scale = wanted(current)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        causes = replicas_causes(replicas)
        if causes:
            raise InvalidError.of("Scale.autoscaling", name, causes)
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        new["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion")
        return new
    return scale_of(store.write(r.api_version, r.plural, where.namespace, name, change))
