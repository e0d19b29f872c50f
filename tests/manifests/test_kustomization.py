"""Every kustomization renders with real kustomize (kubectl kustomize); the base and the single-namespace variant
create what they should, and the data ConfigMaps hold valid data."""

from __future__ import annotations

import re

import pytest
import yaml

from services.core.datafiles import load_system_dir
from tests.manifests.conftest import BASE, KUSTOMIZATIONS, MANIFESTS, REPO, environment, find
from tests.manifests.rendering import KustomizeError, render

STATIC_KEYS = {"accelerator-data.json", "model-data.json", "serviceclass-data.json", "optimizer-data.json"}
DYNAMIC_KEYS = {"capacity-data.json"}


def test_every_install_directory_is_a_kustomization():
    names = {str(d.relative_to(MANIFESTS)) for d in KUSTOMIZATIONS}
    assert {".", "base", "rbac-namespaced"} <= names


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_every_kustomization_renders_with_real_kustomize(directory):
    objects = render(directory)
    assert objects, f"{directory} renders nothing"
    keys = [(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "an object is rendered twice"


def test_the_install_creates_namespace_account_rbac_deployment_service_policy_and_three_configmaps(base_objects):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in base_objects)
    settings = find(base_objects, "ConfigMap", "inferno-settings")["metadata"]["name"]
    assert re.fullmatch(r"inferno-settings-[a-z0-9]{10}", settings), "the settings name carries a content hash"
    assert kinds == sorted([
        ("Namespace", "inferno"), ("ServiceAccount", "inferno"), ("ClusterRole", "inferno"),
        ("ClusterRoleBinding", "inferno"), ("Deployment", "inferno"), ("Service", "inferno"),
        ("NetworkPolicy", "inferno"), ("ConfigMap", "inferno-static-data"), ("ConfigMap", "inferno-dynamic-data"),
        ("ConfigMap", settings),
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
    spec = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    files = [entry for generator in spec["configMapGenerator"] for entry in generator.get("files", [])]
    assert len(files) == 5
    for entry in files:
        sample = REPO / "samples" / "inferno" / "small" / entry.rsplit("/", 1)[-1]
        assert (BASE / entry).read_bytes() == sample.read_bytes(), f"{entry} differs from {sample}"


def test_real_kustomize_refuses_a_generator_file_outside_the_kustomization(tmp_path):
    inner = tmp_path / "base"
    inner.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    (inner / "kustomization.yaml").write_text("configMapGenerator:\n  - name: x\n    files: [../outside.json]\n")
    with pytest.raises(KustomizeError, match="outside|not in or below"):
        render(inner)


def test_real_kustomize_refuses_an_overlay_inside_its_own_base(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "overlay").mkdir()
    (tmp_path / "overlay" / "kustomization.yaml").write_text("resources: [../]\n")
    with pytest.raises(KustomizeError, match="cycle detected"):
        render(tmp_path / "overlay")


def test_the_data_configmaps_keep_stable_names_to_be_edited_in_place(base_objects):
    names = {o["metadata"]["name"] for o in base_objects if o["kind"] == "ConfigMap"}
    assert {"inferno-static-data", "inferno-dynamic-data"} <= names


def test_the_deployment_mounts_both_data_configmaps(deployment):
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    data = next(v for v in volumes if v["name"] == "data")
    projected = {source["configMap"]["name"] for source in data["projected"]["sources"]}
    assert projected == {"inferno-static-data", "inferno-dynamic-data"}


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
        env = environment(namespaced_objects, deployment, container)
        assert env["WATCH_NAMESPACE"] == role_namespace, container["name"]
        assert env["INFERNO_CAPACITY_FROM_NODES"] == "false", "reading Nodes needs a ClusterRole"


def test_every_manifest_path_the_readme_names_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"manifests/[\w./*-]*[\w/]", readme))
    assert {"manifests/samples/premium-llama-13b.yaml", "manifests/samples/podmonitor-*.yaml"} <= paths
    for path in paths:
        assert list(REPO.glob(path)), path
