"""The kustomize base and the single-namespace variant: resources resolve, the ConfigMaps hold valid data."""

from __future__ import annotations

import re

import pytest

from services.core.datafiles import load_system_dir
from tests.manifests.conftest import MANIFESTS, NAMESPACED, REPO, find
from tests.manifests.kustomize import KustomizeError, generator_files, read_kustomization, render

STATIC_KEYS = {"accelerator-data.json", "model-data.json", "serviceclass-data.json", "optimizer-data.json"}
DYNAMIC_KEYS = {"capacity-data.json"}


@pytest.mark.parametrize("directory", [MANIFESTS, NAMESPACED], ids=["base", "rbac-namespaced"])
def test_every_resource_of_the_kustomization_exists(directory):
    for entry in read_kustomization(directory).get("resources", []):
        assert (directory / entry).exists(), f"{directory}/kustomization.yaml lists missing {entry}"


def test_the_base_creates_namespace_account_rbac_deployment_service_policy_and_two_configmaps(base_objects):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in base_objects)
    assert kinds == sorted([
        ("Namespace", "inferno"), ("ServiceAccount", "inferno"), ("ClusterRole", "inferno"),
        ("ClusterRoleBinding", "inferno"), ("Deployment", "inferno"), ("Service", "inferno"),
        ("NetworkPolicy", "inferno"), ("ConfigMap", "inferno-static-data"), ("ConfigMap", "inferno-dynamic-data"),
    ])


def test_every_namespaced_object_of_the_base_lands_in_the_inferno_namespace(base_objects):
    for obj in base_objects:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "inferno", obj["kind"]


@pytest.mark.parametrize(("name", "keys"), [
    pytest.param("inferno-static-data", STATIC_KEYS, id="static"),
    pytest.param("inferno-dynamic-data", DYNAMIC_KEYS, id="dynamic"),
])
def test_generated_configmap_holds_exactly_its_data_files(base_objects, name, keys):
    assert set(find(base_objects, "ConfigMap", name)["data"]) == keys


def test_generated_configmaps_are_valid_inferno_data_in_strict_mode(base_objects, tmp_path):
    for name in ("inferno-static-data", "inferno-dynamic-data"):
        for key, text in find(base_objects, "ConfigMap", name)["data"].items():
            (tmp_path / key).write_text(text, encoding="utf-8")
    loaded = load_system_dir(str(tmp_path), strict=True, require_servers=False)
    system = loaded.system
    assert loaded.warnings == ()
    assert system.accelerators and system.models and system.service_classes and system.capacity.counts


def test_data_files_are_byte_for_byte_copies_of_the_small_sample_set():
    spec = read_kustomization(MANIFESTS)
    for generator in spec["configMapGenerator"]:
        for key, path in generator_files(MANIFESTS, generator).items():
            sample = REPO / "samples" / "inferno" / "small" / key
            assert path.read_bytes() == sample.read_bytes(), f"{path} differs from {sample}"


def test_a_generator_file_outside_the_kustomization_is_refused(tmp_path):
    inner = tmp_path / "base"
    inner.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    (inner / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: x\n    files: [../outside.json]\ngeneratorOptions:\n"
        "  disableNameSuffixHash: true\n")
    with pytest.raises(KustomizeError, match="outside"):
        render(inner)


def test_the_deployment_mounts_both_configmaps_the_kustomization_generates(base_objects, deployment):
    generated = {o["metadata"]["name"] for o in base_objects if o["kind"] == "ConfigMap"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    projected = {source["configMap"]["name"] for v in volumes if "projected" in v
                 for source in v["projected"]["sources"]}
    assert projected == generated


def test_the_image_is_set_by_the_kustomization_images_entry(containers):
    images = {c["image"] for c in containers.values()}
    assert images == {"inferno:0.1.0"}


def test_the_namespaced_variant_drops_every_cluster_wide_permission(namespaced_objects):
    kinds = {o["kind"] for o in namespaced_objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    assert {"Role", "RoleBinding"} <= kinds


def test_the_namespaced_variant_watches_exactly_the_namespace_its_role_grants(namespaced_objects):
    role_namespace = find(namespaced_objects, "Role")["metadata"]["namespace"]
    assert find(namespaced_objects, "RoleBinding")["metadata"]["namespace"] == role_namespace
    deployment = find(namespaced_objects, "Deployment", "inferno")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["WATCH_NAMESPACE"] == role_namespace, container["name"]
        assert env["INFERNO_CAPACITY_FROM_NODES"] == "false", "reading Nodes needs a ClusterRole"


def test_every_manifest_path_the_readme_names_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"manifests/[\w./*-]*[\w/]", readme))
    assert {"manifests/samples/premium-llama-13b.yaml", "manifests/samples/podmonitor-*.yaml"} <= paths
    for path in paths:
        assert list(REPO.glob(path)), path
