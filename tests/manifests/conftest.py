"""Fixtures for the manifest tests: the repository paths and every kustomization rendered by real kustomize."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.manifests.rendering import render

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = MANIFESTS / "base"
NAMESPACED = MANIFESTS / "rbac-namespaced"
SAMPLES = MANIFESTS / "samples"
KUSTOMIZATIONS = sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))
"""Every directory `kubectl apply -k` can be pointed at."""


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    """The one object of ``kind`` (and ``name``; a generated ConfigMap matches without its hash suffix)."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"], _unhashed(o))]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _unhashed(obj: dict) -> str | None:
    name = obj["metadata"]["name"]
    return name.rsplit("-", 1)[0] if obj["kind"] == "ConfigMap" and "-" in name else None


@pytest.fixture(scope="module")
def base_objects() -> list[dict]:
    """What `kubectl apply -k manifests/` creates."""
    return render(MANIFESTS)


@pytest.fixture(scope="module")
def namespaced_objects() -> list[dict]:
    """What `kubectl apply -k manifests/rbac-namespaced/` creates."""
    return render(NAMESPACED)


@pytest.fixture(scope="module")
def deployment(base_objects) -> dict:
    """The inferno Deployment as rendered from the base."""
    return find(base_objects, "Deployment", "inferno")


@pytest.fixture(scope="module")
def containers(deployment) -> dict[str, dict]:
    """The inferno pod's containers by name."""
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def settings_of(objects: list[dict], deployment: dict) -> dict[str, str]:
    """The data of the settings ConfigMap every container of ``deployment`` takes with envFrom."""
    names = {source["configMapRef"]["name"] for c in deployment["spec"]["template"]["spec"]["containers"]
             for source in c.get("envFrom", [])}
    assert len(names) == 1, f"the containers read settings from {sorted(names)}: expected one ConfigMap"
    (name,) = names
    return find(objects, "ConfigMap", name)["data"]


def environment(objects: list[dict], deployment: dict, container: dict) -> dict[str, str]:
    """The environment ``container`` starts with: the shared settings, then its own ``env`` overrides."""
    env = dict(settings_of(objects, deployment))
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env
