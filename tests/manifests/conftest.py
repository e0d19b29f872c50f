"""Fixtures for the manifest tests: the repository paths and the two rendered kustomizations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.manifests.kustomize import render

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
NAMESPACED = MANIFESTS / "rbac-namespaced"
SAMPLES = MANIFESTS / "samples"


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    """The one object of ``kind`` (and ``name``) in ``objects``."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


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
