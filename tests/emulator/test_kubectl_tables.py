"""kubectl (the real binary, from the dev dependencies) against the API emulator: the server answers Tables,
so `kubectl get` shows the columns a cluster shows (READY, UP-TO-DATE, AVAILABLE; READY, STATUS; Events)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from emulator.cluster import Cluster
from emulator.kubetable import age, wants_table
from tests.manifests.rendering import kubectl

pytestmark = pytest.mark.slow

CONFIG = {
    "startup_delay_s": 0.1, "prometheus": False, "namespaces": ["llm"],
    "deployments": [{"name": "granite", "namespace": "llm", "server": "Free-granite_13b", "replicas": 2,
                     "model": "granite_13b", "accelerator": "G2", "maxbatchsize": 4,
                     "perf": {"alpha": 2, "beta": 0.01, "gamma": 0.0001}}],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(CONFIG, workdir=str(tmp_path_factory.mktemp("cluster"))).start()
    yield running
    running.stop()


def get(cluster: Cluster, *args: str) -> list[list[str]]:
    done = subprocess.run([kubectl(), "--kubeconfig", cluster.kubeconfig_path, "get", *args], capture_output=True,
                          text=True, timeout=60, check=True)
    return [line.split() for line in done.stdout.splitlines()]


def test_kubectl_get_deployments_shows_ready_up_to_date_and_available(cluster):
    header, row = get(cluster, "deployments", "-n", "llm")
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row[:4] == ["granite", "2/2", "2", "2"]
    wide = get(cluster, "deployments", "-n", "llm", "-o", "wide")
    assert wide[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"] and wide[1][-1] == "app=granite"


def test_kubectl_get_pods_shows_ready_and_status(cluster):
    header, *rows = get(cluster, "pods", "-n", "llm")
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows) == 2 and all(row[1:4] == ["1/1", "Running", "0"] for row in rows)


def test_kubectl_get_events_shows_reason_object_and_message(cluster):
    api = config.new_client_from_config(config_file=cluster.kubeconfig_path)
    client.CoreV1Api(api).create_namespaced_event("llm", {
        "metadata": {"name": "granite.1"}, "type": "Warning", "reason": "ModelMismatch",
        "message": "observed TTFT 2500 ms vs predicted 40 ms",
        "involvedObject": {"kind": "Deployment", "namespace": "llm", "name": "granite"}})
    header, row = get(cluster, "events", "-n", "llm")
    assert header == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row[1:4] == ["Warning", "ModelMismatch", "deployment/granite"] and " ".join(row[4:]).startswith("observed")


def test_the_official_client_still_gets_plain_objects(cluster):
    api = config.new_client_from_config(config_file=cluster.kubeconfig_path)
    items = client.AppsV1Api(api).list_namespaced_deployment("llm").items
    assert [d.metadata.name for d in items] == ["granite"] and items[0].status.ready_replicas == 2


def test_an_event_without_a_reason_is_refused(cluster):
    api = config.new_client_from_config(config_file=cluster.kubeconfig_path)
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).create_namespaced_event("llm", {
            "metadata": {"name": "granite.2"}, "involvedObject": {"kind": "Deployment", "name": "granite"}})
    assert refused.value.status == 422


@pytest.mark.parametrize(("accept", "table"), [
    pytest.param("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                 "g=meta.k8s.io,application/json", True, id="kubectl"),
    pytest.param("application/json", False, id="client"),
    pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False, id="v1beta1-only"),
])
def test_wants_table(accept, table):
    assert wants_table(accept) is table


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (150, "2m30s"), (900, "15m"), (4 * 3600 + 60, "4h1m"),
                                              (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h")])
def test_ages_read_as_kubectl_prints_them(seconds, text):
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert age((now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"), now) == text
