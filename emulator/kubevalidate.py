"""Validation and defaulting of objects written to the emulated Kubernetes API, with the API's messages."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from emulator.kubeerrors import InvalidError
from emulator.kuberesources import Resource

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_WORKLOADS = ("deployments", "replicasets")


def assign_name(obj: dict[str, Any]) -> None:
    """Fill metadata.name from metadata.generateName (plus five random characters) when only the latter is set."""
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]


def apply_defaults(resource: Resource, obj: dict[str, Any]) -> None:
    """Set the defaults the API server would on create: replicas, strategy, pod and namespace phases."""
    spec = obj.get("spec")
    if resource.plural in _WORKLOADS and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        if resource.plural == "deployments":
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
    if resource.plural == "pods":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    if resource.plural == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {}).setdefault("phase", "Active")


def validate(resource: Resource, obj: dict[str, Any]) -> None:
    """Raise InvalidError (422) when ``obj`` would be rejected by the API server's validation."""
    name = (obj.get("metadata") or {}).get("name") or ""
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    elif len(name) > 253 or not _NAME.match(name):
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    if resource.plural in _WORKLOADS:
        causes += _workload_causes(obj.get("spec"))
    if resource.plural == "events":
        causes += _event_causes(obj)
    if causes:
        raise InvalidError.of(resource.qualified_kind, name, causes)


def _event_causes(event: dict[str, Any]) -> list[tuple[str, str, str]]:
    """core/v1 Event: an involvedObject in the Event's own namespace, a reason and a type of Normal or Warning."""
    involved = event.get("involvedObject")
    namespace = (event.get("metadata") or {}).get("namespace")
    causes = []
    if not isinstance(involved, dict) or not involved.get("kind") or not involved.get("name"):
        causes.append(("FieldValueRequired", "involvedObject", "Required value: kind and name"))
    elif namespace and involved.get("namespace", namespace) != namespace:
        causes.append(("FieldValueInvalid", "involvedObject.namespace",
                       f'Invalid value: "{involved.get("namespace")}": does not match event.namespace'))
    if not event.get("reason"):
        causes.append(("FieldValueRequired", "reason", "Required value"))
    if event.get("type", "Normal") not in ("Normal", "Warning"):
        causes.append(("FieldValueNotSupported", "type", f'Unsupported value: "{event.get("type")}": supported '
                       'values: "Normal", "Warning"'))
    return causes


def _workload_causes(spec: Any) -> list[tuple[str, str, str]]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    causes = replicas_causes(spec.get("replicas"))
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        return causes
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(key) != value for key, value in wanted.items()):
        causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                       f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    return causes


def replicas_causes(replicas: Any) -> list[tuple[str, str, str]]:
    """The validation causes of a spec.replicas value (none when it is a non-negative integer)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        return [("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas!r}: must be an integer")]
    if replicas < 0:
        return [("FieldValueInvalid", "spec.replicas",
                 f"Invalid value: {replicas}: must be greater than or equal to 0")]
    return []


def admit_write(resource: Resource, current: dict, wanted: dict, status_only: bool) -> dict:
    """The object stored when ``wanted`` is written over ``current``.

    Identity fields and (with a status subresource) the status are kept from ``current``; a status write keeps
    everything but the status. Defaults are applied, the result validated, the generation bumped when the
    spec changed.
    """
    if status_only:
        new = copy.deepcopy(current)
        new["status"] = copy.deepcopy(wanted.get("status") or {})
        return new
    new = copy.deepcopy(wanted)
    meta = new.setdefault("metadata", {})
    for field in ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"):
        meta.pop(field, None)
        if field in current["metadata"]:
            meta[field] = current["metadata"][field]
    if "status" in resource.subresources:
        new.pop("status", None)
        if "status" in current:
            new["status"] = copy.deepcopy(current["status"])
    apply_defaults(resource, new)
    validate(resource, new)
    new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
    if resource.has_generation and _spec_of(new) != _spec_of(current):
        meta["generation"] = current["metadata"].get("generation", 1) + 1
    return new


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
