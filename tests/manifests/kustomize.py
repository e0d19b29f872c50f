"""A small kustomize renderer for the manifest tests (no kustomize binary here).

It understands exactly what manifests/ uses, and refuses anything else so that a new field cannot be
silently ignored: ``resources`` (files and directories), ``configMapGenerator`` with ``files``,
``generatorOptions.disableNameSuffixHash``, ``namespace``, ``images`` and inline strategic-merge
``patches`` (``$patch: delete`` removes the object). Like kustomize, generator files must lie under the
kustomization's own directory.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from emulator.kubepatch import strategic_merge_patch

KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "generatorOptions",
                "images", "patches"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer (and so the tests) does not check, or is broken."""


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of ``path``."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def read_kustomization(directory: Path) -> dict[str, Any]:
    """The kustomization.yaml of ``directory``, checked for fields this renderer does not understand."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: kustomization fields not understood here: {sorted(unknown)}")
    return spec


def generator_files(directory: Path, generator: dict[str, Any]) -> dict[str, Path]:
    """ConfigMap key -> file of one configMapGenerator entry (``key=path`` or ``path``)."""
    if set(generator) - {"name", "files"}:
        raise KustomizeError(f"configMapGenerator {generator.get('name')}: only name and files are understood")
    files = {}
    for entry in generator["files"]:
        key, _, relative = entry.rpartition("=")
        path = (directory / relative).resolve()
        if not path.is_relative_to(directory.resolve()):
            raise KustomizeError(f"{entry}: kustomize refuses files outside {directory}")
        if not path.is_file():
            raise KustomizeError(f"{entry}: no such file under {directory}")
        files[key or os.path.basename(relative)] = path
    return files


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` would create, in order."""
    directory = Path(directory)
    spec = read_kustomization(directory)
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects.extend(render(path))
        elif path.is_file():
            objects.extend(copy.deepcopy(load_documents(path)))
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    objects.extend(_generated(directory, spec))
    if spec.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _set_image(objects, image)
    for patch in spec.get("patches", []):
        objects = _patched(objects, patch)
    return objects


def _generated(directory: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    generators = spec.get("configMapGenerator", [])
    if generators and not spec.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise KustomizeError("generated names with a hash suffix are not rendered here")
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
         "data": {key: path.read_text(encoding="utf-8") for key, path in generator_files(directory, generator).items()}}
        for generator in generators
    ]


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template (empty for other kinds)."""
    template = obj.get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", [])


def _set_image(objects: list[dict[str, Any]], image: dict[str, Any]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"image {image}: only name, newName and newTag are understood")
    for obj in objects:
        for container in pod_containers(obj):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"


def _patched(objects: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    if set(patch) != {"patch"}:
        raise KustomizeError("only inline strategic-merge patches (patch:) are understood")
    body = yaml.safe_load(patch["patch"])
    meta = body["metadata"]

    def target(obj: dict[str, Any]) -> bool:
        return (obj["kind"] == body["kind"] and obj["metadata"]["name"] == meta["name"]
                and obj["metadata"].get("namespace") == meta.get("namespace", obj["metadata"].get("namespace")))

    matches = [obj for obj in objects if target(obj)]
    if len(matches) != 1:
        raise KustomizeError(f"patch for {body['kind']}/{meta['name']} matches {len(matches)} objects")
    if body.get("$patch") == "delete":
        return [obj for obj in objects if not target(obj)]
    return [strategic_merge_patch(obj, body) if target(obj) else obj for obj in objects]
