"""Issue 19's scenario end to end: the four services against the local cluster with the only data shipped for a
cluster (manifests/base/data), whose batch rule gives 608 for a server whose pods run --max-num-seqs 2, under
the stair-step's top load (the optimizer decides a batch above 2: the rule's 608, or what its batch search
picks). The batch is never applied (label and args stay at the pod's 2, a BatchLimited
Event says the pod's limit won) and the model-vs-reality check warns: in the cycle record, the row, the
metric, and a ModelMismatch Event on the Deployment."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from emulator.cluster import Cluster
from harness.services import ServiceProcesses
from services.controller.modelcheck import CYCLES
from tests.manifests.conftest import BASE, SAMPLES

pytestmark = pytest.mark.e2e

NS, NAME, SERVER = "llm", "bronze-granite-13b", "Bronze-granite_13b"
CONFIG = {
    "startup_delay_s": 1, "prometheus": False, "namespaces": [NS],
    "deployments": [{"name": NAME, "manifest": str(SAMPLES / "bronze-granite-13b.yaml"), "namespace": NS,
                     "server": SERVER, "replicas": 1, "model": "granite_13b", "class": "Bronze",
                     "accelerator": "G2", "maxbatchsize": 2, "max_num_seqs": 2,
                     "perf": {"alpha": 17.15, "beta": 0.034, "gamma": 0.0010625}}],
    "loads": [{"deployment": NAME, "namespace": NS, "in_tokens": 128, "out_tokens": 64,
               "phases": [{"rate_rps": 2.0, "duration_s": 600}]}],
}


def test_manifests_data_gives_a_clear_warning_and_no_absurd_batch(tmp_path):
    cluster = Cluster(CONFIG, workdir=str(tmp_path / "cluster"))
    os.makedirs(cluster.workdir, exist_ok=True)
    cluster.start(wait_ready_s=60)
    services = None
    try:
        cluster.start_load(seed=5)
        services = ServiceProcesses(str(tmp_path), {
            "KUBECONFIG": cluster.kubeconfig_path, "INFERNO_DATA_PATH": str(BASE / "data"),
            "WATCH_NAMESPACE": NS, "INFERNO_PROMETHEUS_WINDOW": "20s", "INFERNO_GRPC_DEADLINE": "20",
            "INFERNO_CYCLE_LOG": str(tmp_path / "cycles.jsonl"), "INFERNO_SHUTDOWN_GRACE": "2"}).start(60)
        time.sleep(25)  # the queue builds up: 2 req/s against a capacity of about 1.2
        records = [services.invoke()[1] for _ in range(CYCLES)]
        row = {r["server"]: r for r in records[-1]["rows"]}[SERVER]
        assert [r["outcome"] for r in records] == ["applied"] * CYCLES
        assert row["model_mismatch"] is True and row["model_ttft_ratio"] > 2, row
        assert row["current_predicted_ttft_ms"] == pytest.approx(row["predicted_ttft_ms"], rel=0.05), \
            "the check holds the decision's own prediction against what the server shows"
        assert row["max_batch"] > 2 and "the pod's limit wins" in row["action_reason"] + str(
            [e.get("message") for e in cluster.store.list("v1", "events", NS)])
        assert any("the model disagrees with what the server shows" in w for w in records[-1]["warnings"])
        deployment = cluster.store.get("apps/v1", "deployments", NS, NAME)
        assert deployment["metadata"]["labels"]["inferno.server.allocation.maxbatchsize"] == "2"
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--max-num-seqs=2" in args and not any("608" in a for a in args)
        reasons = {e["reason"] for e in cluster.store.list("v1", "events", NS)}
        assert {"BatchLimited", "ModelMismatch"} <= reasons
        with urllib.request.urlopen(services.controller_url + "/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
        assert f'inferno_server_model_mismatch{{deployment="{NAME}"' in metrics
        assert json.loads((tmp_path / "cycles.jsonl").read_text().splitlines()[-1])["rows"][0]["model_mismatch"]
    finally:
        if services is not None:
            services.stop()
        cluster.stop()
