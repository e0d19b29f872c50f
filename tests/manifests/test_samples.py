"""The samples: managed vLLM Deployments that keep the label contract and fit the sample data, the ways
to scrape them, the HPA and KEDA examples, and the emulated cluster accepting and discovering them."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from kubernetes import client, config, utils

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubestore import KubeStore
from services.collector.sources import KubeSource
from services.core import labels as contract
from services.core.datafiles import load_system_dir
from tests.manifests.conftest import MANIFESTS, REPO, SAMPLES
from tests.manifests.rendering import load_documents, pod_containers

SERVER_FILES = sorted(p for p in SAMPLES.glob("*.yaml") if load_documents(p)[0]["kind"] == "Deployment")


def _sample(path):
    (obj,) = load_documents(path)
    return obj


def _arg(container: dict, flag: str) -> str:
    values = [a.split("=", 1)[1] for a in container["args"] if a.startswith(flag + "=")]
    assert len(values) == 1, f"{flag} given {len(values)} times"
    return values[0]


@pytest.fixture(scope="module")
def static_data():
    return load_system_dir(str(MANIFESTS / "base" / "data"), strict=True, require_servers=False).system


@pytest.fixture(scope="module")
def samples() -> dict[str, dict]:
    return {_sample(p)["metadata"]["name"]: _sample(p) for p in SERVER_FILES}


def test_there_are_three_sample_servers_of_three_classes(samples):
    assert len(samples) == 3
    assert {s["metadata"]["labels"][contract.CLASS] for s in samples.values()} == {"Premium", "Bronze", "Free"}


@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda p: p.stem)
def test_sample_labels_parse_without_warnings_against_the_deployed_data(path, static_data):
    labels = _sample(path)["metadata"]["labels"]
    assert labels[contract.MANAGED] == "true"
    parsed, warnings = contract.parse_labels(labels, path.stem, static_data)
    assert warnings == []
    assert parsed is not None and parsed.accelerator and parsed.max_batch > 0


@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda p: p.stem)
def test_sample_is_a_server_of_the_small_sample_set(path):
    labels = _sample(path)["metadata"]["labels"]
    servers = json.loads((REPO / "samples/inferno/small/server-data.json").read_text())["servers"]
    server = next(s for s in servers if s["name"] == labels[contract.NAME])
    assert (server["class"], server["model"]) == (labels[contract.CLASS], labels[contract.MODEL])


@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda p: p.stem)
def test_vllm_batch_size_and_gpus_follow_the_allocation_labels(path, static_data):
    obj = _sample(path)
    labels = obj["metadata"]["labels"]
    (vllm,) = pod_containers(obj)
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert _arg(vllm, "--max-num-seqs") == labels[contract.MAX_BATCH]
    accelerator = static_data.accelerator(labels[contract.ACCELERATOR])
    perf = next(p for p in static_data.models
                if p.model == labels[contract.MODEL] and p.accelerator == accelerator.name)
    gpus = str(perf.acc_count * accelerator.multiplicity)
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert _arg(vllm, "--tensor-parallel-size") == gpus
    assert int(labels[contract.MAX_BATCH]) <= perf.max_batch_size


@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda p: p.stem)
def test_pod_template_carries_identity_labels_but_not_the_allocation(path):
    obj = _sample(path)
    meta_labels = obj["metadata"]["labels"]
    pod_labels = obj["spec"]["template"]["metadata"]["labels"]
    assert obj["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for key in (contract.MANAGED, contract.NAME, contract.MODEL, contract.CLASS):
        assert pod_labels[key] == meta_labels[key]
    assert not any(key.startswith(contract.PREFIX + "allocation.") for key in pod_labels), "would restart pods"


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) == {"matchLabels"}
    return selector["matchLabels"].items() <= labels.items()


def test_the_vllm_podmonitor_selects_every_sample_pod_on_its_http_port(samples):
    monitor = _sample(SAMPLES / "podmonitor-vllm.yaml")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    for obj in samples.values():
        assert _selects(monitor["spec"]["selector"], obj["spec"]["template"]["metadata"]["labels"])
        (vllm,) = pod_containers(obj)
        assert ports <= {p["name"] for p in vllm["ports"]}


def test_the_inferno_podmonitor_scrapes_the_metrics_ports_and_keeps_the_gauge_labels(deployment, containers):
    monitor = _sample(SAMPLES / "podmonitor-inferno.yaml")
    assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert _selects(monitor["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    pod_ports = {p["name"] for c in containers.values() for p in c.get("ports", [])}
    endpoints = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    assert set(endpoints) == {"metrics", "http"} and set(endpoints) <= pod_ports
    assert endpoints["metrics"]["honorLabels"] is True


def _sd_label(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _kept(job: dict, meta: dict[str, str]) -> bool:
    for rule in job["relabel_configs"]:
        if rule.get("action") == "keep":
            value = ";".join(meta.get(label, "") for label in rule["source_labels"])
            if not re.fullmatch(rule["regex"], value):
                return False
    return True


def test_the_prometheus_scrape_jobs_keep_the_sample_pods_and_the_inferno_pod(samples, deployment):
    configmap = _sample(MANIFESTS / "prometheus" / "scrape-config.yaml")
    (text,) = configmap["data"].values()
    jobs = {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}
    assert set(jobs) == {"inferno-vllm", "inferno"}
    assert jobs["inferno"]["honor_labels"] is True
    for obj in samples.values():
        meta = {_sd_label(k): v for k, v in obj["spec"]["template"]["metadata"]["labels"].items()}
        assert _kept(jobs["inferno-vllm"], {**meta, "__meta_kubernetes_pod_container_port_name": "http"})
        assert not _kept(jobs["inferno"], {**meta, "__meta_kubernetes_pod_container_port_name": "http"})
    inferno = {_sd_label(k): v for k, v in deployment["spec"]["template"]["metadata"]["labels"].items()}
    assert _kept(jobs["inferno"], {**inferno, "__meta_kubernetes_pod_container_port_name": "metrics"})
    assert not _kept(jobs["inferno-vllm"], {**inferno, "__meta_kubernetes_pod_container_port_name": "http"})
    targets = {r.get("target_label") for r in jobs["inferno-vllm"]["relabel_configs"]}
    assert {"namespace", "pod"} <= targets, "the collector groups by namespace and pod"


def test_the_hpa_follows_inferno_desired_replicas_of_its_target(samples):
    hpa = _sample(SAMPLES / "hpa-premium-llama-13b.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "premium-llama-13b") and target["name"] in samples
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "inferno_desired_replicas"
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"deployment": target["name"]}
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}


def test_the_keda_scaledobject_queries_inferno_desired_replicas_of_its_target(samples):
    scaled = _sample(SAMPLES / "keda-bronze-granite-13b.yaml")
    name = scaled["spec"]["scaleTargetRef"]["name"]
    assert name in samples
    (trigger,) = scaled["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    assert query.startswith("max(inferno_desired_replicas{")
    assert f'deployment="{name}"' in query
    assert (trigger["metricType"], trigger["metadata"]["threshold"]) == ("AverageValue", "1")


def test_the_hpa_and_keda_examples_never_target_the_same_deployment():
    hpa = _sample(SAMPLES / "hpa-premium-llama-13b.yaml")
    scaled = _sample(SAMPLES / "keda-bronze-granite-13b.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] != scaled["spec"]["scaleTargetRef"]["name"]


@pytest.fixture
def emulated_cluster(tmp_path):
    """An ApiClient on a fresh emulated Kubernetes API (127.0.0.1), closed and stopped afterwards."""
    with KubeApiServer(KubeStore()) as server:
        path = write_kubeconfig(str(tmp_path / "kubeconfig"), server.url)
        configuration = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=configuration)
        api = client.ApiClient(configuration)
        yield api
        api.close()


def test_the_emulated_cluster_accepts_the_samples_and_the_collector_finds_them(emulated_cluster, samples):
    for path in SERVER_FILES:
        utils.create_from_yaml(emulated_cluster, str(path), namespace="default")
    found = {facts.ref.name: facts for facts in KubeSource(emulated_cluster).deployments(["default"])}
    assert set(found) == set(samples)
    for name, facts in found.items():
        assert facts.labels == samples[name]["metadata"]["labels"]
        assert facts.spec_replicas == samples[name]["spec"]["replicas"]

