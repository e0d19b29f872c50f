"""Structural schemas for the custom resources in manifests/samples/ (kubernetes-validate has none for CRDs).

They cover the fields of PodMonitor (monitoring.coreos.com/v1, Prometheus Operator) and ScaledObject
(keda.sh/v1alpha1, KEDA) that the samples use, with their types, and reject unknown keys at the levels the
samples fill in, so a misspelt field fails the test instead of being ignored by the CRD's pruning.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_INTEGER = {"type": "integer", "minimum": 0}
_LABELS = {"type": "object", "additionalProperties": _STRING}
_METADATA = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": _STRING, "namespace": _STRING, "labels": _LABELS, "annotations": _LABELS},
}
_LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {"matchLabels": _LABELS, "matchExpressions": {"type": "array"}},
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
        "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA,
                       "spec": spec},
    }


_POD_METRICS_ENDPOINT = {
    "type": "object", "additionalProperties": False, "anyOf": [{"required": ["port"]}, {"required": ["portNumber"]}],
    "properties": {
        "port": _STRING, "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535}, "path": _STRING,
        "scheme": {"enum": ["http", "https"]}, "interval": _DURATION, "scrapeTimeout": _DURATION,
        "honorLabels": {"type": "boolean"}, "honorTimestamps": {"type": "boolean"},
        "relabelings": {"type": "array"}, "metricRelabelings": {"type": "array"},
        "params": {"type": "object"},
    },
}

POD_MONITOR = _resource("monitoring.coreos.com/v1", "PodMonitor", {
    "type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
    "properties": {
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "additionalProperties": False,
                              "properties": {"any": {"type": "boolean"},
                                             "matchNames": {"type": "array", "items": _STRING}}},
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _POD_METRICS_ENDPOINT},
        "jobLabel": _STRING, "podTargetLabels": {"type": "array", "items": _STRING}, "sampleLimit": _INTEGER,
    },
})

_PROMETHEUS_TRIGGER = {
    "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
    "properties": {
        "type": {"const": "prometheus"}, "name": _STRING,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "authenticationRef": {"type": "object", "required": ["name"]},
        "metadata": {
            "type": "object", "required": ["serverAddress", "query", "threshold"],
            "additionalProperties": _STRING,
            "properties": {"serverAddress": {"type": "string", "pattern": "^https?://"}, "query": _STRING,
                           "threshold": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
                           "activationThreshold": _STRING, "ignoreNullValues": {"enum": ["true", "false"]},
                           "namespace": _STRING, "unsafeSsl": {"enum": ["true", "false"]},
                           "customHeaders": _STRING, "queryParameters": _STRING},
        },
    },
}

SCALED_OBJECT = _resource("keda.sh/v1alpha1", "ScaledObject", {
    "type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
    "properties": {
        "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                           "properties": {"apiVersion": _STRING, "kind": _STRING, "name": _STRING,
                                          "envSourceContainerName": _STRING}},
        "pollingInterval": _INTEGER, "cooldownPeriod": _INTEGER, "initialCooldownPeriod": _INTEGER,
        "idleReplicaCount": _INTEGER, "minReplicaCount": _INTEGER, "maxReplicaCount": _INTEGER,
        "advanced": {"type": "object"}, "fallback": {"type": "object"},
        "triggers": {"type": "array", "minItems": 1, "items": _PROMETHEUS_TRIGGER},
    },
})

SCHEMAS = {("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR, ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT}
"""(apiVersion, kind) -> JSON schema, for the custom resources the manifests use."""
