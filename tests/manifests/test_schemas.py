"""Every manifest validates offline: built-in kinds against the Kubernetes 1.33 schemas in strict mode
(kubernetes-validate), custom resources against the structural schemas in crd_schemas.py."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.manifests.conftest import MANIFESTS
from tests.manifests.crd_schemas import SCHEMAS
from tests.manifests.rendering import load_documents

KUBERNETES_VERSION = "1.33"
MANIFEST_FILES = sorted(p for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml")


def validate(obj: dict) -> None:
    """Raise when ``obj`` is not a valid object of its kind."""
    schema = SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_manifest_tree_has_the_expected_parts():
    names = {p.relative_to(MANIFESTS).parts[0] for p in MANIFEST_FILES}
    assert {"base", "rbac", "rbac-namespaced", "samples", "prometheus"} <= names
    assert {"deployment.yaml", "service.yaml"} <= {p.name for p in MANIFEST_FILES if p.parent.name == "base"}


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_manifest_file_validates_strictly(path):
    documents = load_documents(path)
    assert documents, f"{path} holds no object"
    for obj in documents:
        validate(obj)


def test_every_rendered_object_validates_strictly(base_objects, namespaced_objects):
    for obj in (*base_objects, *namespaced_objects):
        validate(obj)


def test_strict_validation_rejects_an_unknown_container_field(deployment):
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


@pytest.mark.parametrize(("path", "edit"), [
    pytest.param("samples/podmonitor-vllm.yaml", lambda o: o["spec"]["podMetricsEndpoints"][0].update(honorLabel=True),
                 id="podmonitor-misspelt-field"),
    pytest.param("samples/keda-bronze-granite-13b.yaml", lambda o: o["spec"]["triggers"][0]["metadata"].pop("query"),
                 id="scaledobject-without-query"),
    pytest.param("samples/keda-bronze-granite-13b.yaml", lambda o: o["spec"].update(maxReplicas=3),
                 id="scaledobject-hpa-field-name"),
])
def test_custom_resource_schemas_reject_broken_objects(path, edit):
    obj = load_documents(MANIFESTS / path)[0]
    edit(obj)
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)

