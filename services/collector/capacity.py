"""Accelerator capacity: from capacity-data.json, or (a setting) from the cluster's Nodes.

From Nodes: each node's allocatable GPUs of one of the known vendor resources, typed by its product label,
minus what running pods that are not managed servers request (the managed servers' own cards are theirs
to re-allocate). A node's product maps to an accelerator type of the static data: through the
INFERNO_ACCELERATOR_NODE_LABELS map when the node carries an accelerator's labels, else by exact name,
else by a type appearing as a word of the product (``NVIDIA-A100-SXM4-80GB`` -> ``A100``), else the product
stays as it is, with a warning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from services.core import datafiles
from services.core import model as m
from services.core.errors import DataFileError

VENDORS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("nvidia.com/gpu", ("nvidia.com/gpu.product",), "NVIDIA-GPU"),
    ("amd.com/gpu", ("amd.com/gpu.product-name", "beta.amd.com/gpu.product-name"), "AMD-GPU"),
    ("gpu.intel.com/i915", ("gpu.intel.com/product",), "Intel-GPU"),
    ("habana.ai/gaudi", ("habana.ai/gaudi.product",), "Gaudi"),
)
"""(extended resource, product labels in order of preference, type when no product label is set)."""
_RESOURCES = tuple(v[0] for v in VENDORS)


@dataclass(frozen=True, slots=True)
class NodeCards:
    """GPUs of one vendor resource on one node: the product name and allocatable count."""

    node: str
    resource: str
    product: str
    allocatable: int
    labels: Mapping[str, str]


def _quantity(value: Any) -> int:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def node_cards(node: Any) -> list[NodeCards]:
    """A V1Node -> its GPU entries (one per vendor resource with allocatable > 0)."""
    labels = dict(node.metadata.labels or {})
    allocatable = (node.status.allocatable if node.status else None) or {}
    cards = []
    for resource, product_labels, default in VENDORS:
        count = _quantity(allocatable.get(resource, 0))
        if count > 0:
            product = next((labels[k] for k in product_labels if labels.get(k)), default)
            cards.append(NodeCards(node.metadata.name, resource, product, count, labels))
    return cards


def pod_requests(pod: Any) -> dict[str, int]:
    """GPUs a V1Pod asks for per vendor resource (requests, else limits, summed over containers)."""
    asked: dict[str, int] = {}
    for container in pod.spec.containers or []:
        resources = container.resources
        requests = (resources.requests if resources else None) or {}
        limits = (resources.limits if resources else None) or {}
        for resource in _RESOURCES:
            count = _quantity(requests.get(resource, limits.get(resource, 0)))
            if count:
                asked[resource] = asked.get(resource, 0) + count
    return asked


def card_type(cards: NodeCards, static: m.SystemData | None,
              node_labels: Mapping[str, Mapping[str, str]]) -> str | None:
    """The accelerator type of ``cards`` (see the module docstring), or None when the data knows none."""
    types = sorted({a.type for a in static.accelerators}, key=len, reverse=True) if static else []
    for accelerator, wanted in sorted(node_labels.items()):
        acc = static.accelerator(accelerator) if static else None
        if acc is not None and wanted and all(cards.labels.get(k) == v for k, v in wanted.items()):
            return acc.type
    words = [w.lower() for w in re.split(r"[-_ ./]+", cards.product) if w]
    for known in types:
        if known.lower() == cards.product.lower() or known.lower() in words:
            return known
    return None


def count_free(cards: Sequence[NodeCards], used: Mapping[tuple[str, str], int], static: m.SystemData | None,
               node_labels: Mapping[str, Mapping[str, str]]) -> tuple[m.Capacity, list[str]]:
    """Free cards per type: allocatable minus ``used`` {(node, resource): cards}, never below 0."""
    counts: dict[str, int] = {}
    warnings = []
    for entry in cards:
        kind = card_type(entry, static, node_labels)
        if kind is None:
            kind = entry.product
            warnings.append(f"node {entry.node}: GPU product {entry.product!r} matches no accelerator type "
                            f"in the data; counted as {kind!r}")
        free = max(entry.allocatable - used.get((entry.node, entry.resource), 0), 0)
        counts[kind] = counts.get(kind, 0) + free
    return m.Capacity(counts), warnings


def capacity_from_file(data_path: str) -> tuple[m.Capacity, list[str]]:
    """capacity-data.json in ``data_path`` -> (Capacity, warnings); an absent file is empty capacity."""
    path = os.path.join(data_path, datafiles.FILES["capacity"])
    if not os.path.exists(path):
        return m.Capacity(), []
    try:
        return datafiles.load_capacity(path), []
    except DataFileError as err:
        return m.Capacity(), [f"capacity not read: {err}"]


class NodeCapacitySource:
    """Reads Nodes and Pods cluster-wide to count free accelerator cards per type."""

    def __init__(self, api_client: client.ApiClient, node_labels: Mapping[str, Mapping[str, str]] | None = None,
                 timeout_s: float = 10.0) -> None:
        self._core = client.CoreV1Api(api_client)
        self._node_labels = node_labels or {}
        self._timeout_s = timeout_s

    def capacity(self, static: m.SystemData | None,
                 managed_pods: set[tuple[str, str]]) -> tuple[m.Capacity, list[str]]:
        """Free cards per type, not counting cards held by ``managed_pods`` {(namespace, pod)}.

        Never raises: when the API fails, returns empty capacity and a warning.
        """
        try:
            nodes = self._core.list_node(_request_timeout=self._timeout_s).items
            pods = self._core.list_pod_for_all_namespaces(_request_timeout=self._timeout_s).items
        except (ApiException, HTTPError, OSError) as err:
            return m.Capacity(), [f"capacity from Nodes not read ({type(err).__name__}); using the data file"]
        used: dict[tuple[str, str], int] = {}
        for pod in pods:
            phase = pod.status.phase if pod.status else None
            if (pod.metadata.namespace, pod.metadata.name) in managed_pods or phase in ("Succeeded", "Failed"):
                continue
            if pod.spec and pod.spec.node_name:
                for resource, count in pod_requests(pod).items():
                    key = (pod.spec.node_name, resource)
                    used[key] = used.get(key, 0) + count
        cards = [c for node in nodes for c in node_cards(node)]
        return count_free(cards, used, static, self._node_labels)
