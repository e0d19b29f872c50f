"""The cluster runner: a config becomes managed Deployments behind a kubeconfig; `up` stops on SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
import yaml
from kubernetes import client, config

from emulator.cluster import Cluster, deployment_object
from emulator.podtemplate import engine_params, model_name

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = {
    "startup_delay_s": 0.1, "prometheus": False, "namespaces": ["llm"],
    "deployments": [{"name": "premium-llama", "namespace": "llm", "server": "Premium-llama_13b", "replicas": 2,
                     "model": "llama_13b", "class": "Premium", "accelerator": "G2", "maxbatchsize": 4,
                     "perf": {"alpha": 2, "beta": 0.01, "gamma": 0.0001}, "load": {"rpm": 60}}],
    "loads": [{"deployment": "premium-llama", "namespace": "llm", "in_tokens": 16, "out_tokens": 4,
               "phases": [{"rate_rps": 20, "duration_s": 1}]}],
}


def test_deployment_object_carries_the_inferno_contract():
    obj = deployment_object(CONFIG["deployments"][0])
    labels = obj["metadata"]["labels"]
    assert labels["inferno.server.managed"] == "true" and labels["inferno.server.name"] == "Premium-llama_13b"
    assert labels["inferno.server.allocation.accelerator"] == "G2"
    assert labels["inferno.server.allocation.maxbatchsize"] == "4" and labels["inferno.server.load.rpm"] == "60"
    assert obj["spec"]["template"]["metadata"]["annotations"]["inferno.emulator/alpha"] == "2"


def test_a_manifest_entry_keeps_the_sample_deployment_and_applies_the_allocation_on_top():
    spec = {"manifest": "manifests/samples/premium-llama-13b.yaml", "namespace": "llm", "replicas": 2,
            "accelerator": "G2", "maxbatchsize": 4, "max_num_seqs": 4, "perf": {"alpha": 16.78},
            "load": {"rpm": 90}}
    obj = deployment_object(spec, base_dir=REPO)
    with open(os.path.join(REPO, spec["manifest"])) as handle:
        sample = yaml.safe_load(handle)
    assert obj["metadata"]["name"] == "premium-llama-13b" and obj["metadata"]["namespace"] == "llm"
    assert obj["spec"]["replicas"] == 2 and obj["spec"]["selector"] == sample["spec"]["selector"]
    labels = obj["metadata"]["labels"]
    assert labels["inferno.server.name"] == "Premium-llama_13b"
    assert labels["inferno.server.allocation.accelerator"] == "G2"
    assert labels["inferno.server.allocation.maxbatchsize"] == "4" and labels["inferno.server.load.rpm"] == "90"
    template = obj["spec"]["template"]
    assert template["metadata"]["labels"] == sample["spec"]["template"]["metadata"]["labels"]
    expected = sample["spec"]["template"]["spec"]
    expected["containers"][0]["args"] = [a if not a.startswith("--max-num-seqs") else "--max-num-seqs=4"
                                         for a in expected["containers"][0]["args"]]
    expected["containers"][0]["args"].append(expected["containers"][0]["args"].pop(
        next(i for i, a in enumerate(expected["containers"][0]["args"]) if a.startswith("--max-num-seqs"))))
    assert template["spec"] == expected, "the sample's pod spec, with the emulated --max-num-seqs"
    params = engine_params(obj)
    assert params.max_num_seqs == 4 and params.alpha_ms == 16.78
    assert model_name(obj) == "llama_13b"


def test_a_manifest_that_is_not_one_deployment_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("kind: Deployment\n---\nkind: Service\n")
    with pytest.raises(ValueError, match="two.yaml.*exactly one Deployment"):
        Cluster({"deployments": [{"manifest": str(path)}]})
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="two.yaml.*exactly one Deployment"):
        Cluster({"deployments": [{"manifest": str(path)}]})
    with pytest.raises(ValueError, match="needs a name or a manifest"):
        deployment_object({"replicas": 1})


def test_cluster_serves_the_official_client_and_runs_its_load(tmp_path):
    with Cluster(CONFIG) as cluster:
        configuration = client.Configuration()
        config.load_kube_config(config_file=cluster.kubeconfig_path, client_configuration=configuration)
        with client.ApiClient(configuration) as api:
            listed = client.AppsV1Api(api).list_deployment_for_all_namespaces(
                label_selector="inferno.server.managed=true")
            assert [d.metadata.name for d in listed.items] == ["premium-llama"]
            assert listed.items[0].status.ready_replicas == 2
        urls = cluster.endpoints("llm", "premium-llama")
        assert len(urls) == 2 and requests.get(urls[0] + "/health", timeout=5).ok
        assert cluster.prometheus_url is None
        result = cluster.start_load().wait()["llm/premium-llama"]
        assert result["completed"] == result["sent"] > 5
    assert not os.path.exists(cluster.workdir)


def test_up_prints_the_cluster_and_stops_on_sigterm(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "loads": []}))
    process = subprocess.Popen([sys.executable, "-m", "emulator", "up", "--config", str(path)],
                               stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(
                                   os.path.dirname(os.path.abspath(__file__)))))
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("kubeconfig: ") and "endpoints llm/premium-llama: http://127.0.0.1:" in lines[2]
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout.read().strip().endswith("stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class _Lines:
    """The lines of a process's stdout, read by one background thread."""

    def __init__(self, stream) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(line) for line in iter(stream.readline, "")],
                         daemon=True).start()

    def until(self, wanted: list[str], timeout_s: float = 30.0) -> list[str]:
        """Lines until every fragment of ``wanted`` was seen in one of them, or the timeout."""
        seen, end = [], time.monotonic() + timeout_s
        while time.monotonic() < end and not all(any(w in line for line in seen) for w in wanted):
            try:
                seen.append(self._queue.get(timeout=0.2))
            except queue.Empty:
                continue
        return seen


def test_up_prints_scaling_new_endpoints_and_events_while_it_runs(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "loads": []}))
    process = subprocess.Popen([sys.executable, "-m", "emulator", "up", "--config", str(path), "--no-load"],
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        output = _Lines(process.stdout)
        head = output.until(["load: none"])
        kubeconfig = head[0].split(": ", 1)[1].strip()
        assert any("--no-load" in line for line in head)
        api = config.new_client_from_config(config_file=kubeconfig)
        client.AppsV1Api(api).patch_namespaced_deployment_scale("premium-llama", "llm", {"spec": {"replicas": 3}})
        client.CoreV1Api(api).create_namespaced_event("llm", {
            "metadata": {"generateName": "premium-llama."}, "type": "Normal", "reason": "ScaledUp",
            "message": "replicas 2 -> 3", "source": {"component": "inferno-actuator"},
            "involvedObject": {"kind": "Deployment", "namespace": "llm", "name": "premium-llama"}})
        lines = output.until(["scaled 2 -> 3 replicas", "replica ready", "ScaledUp"])
        text = "".join(lines)
        assert "deployment llm/premium-llama: scaled 2 -> 3 replicas" in text
        assert "replica ready llm/premium-llama pod premium-llama-" in text and ": http://127.0.0.1:" in text
        assert "event llm/premium-llama Normal ScaledUp: replicas 2 -> 3 (from inferno-actuator)" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_max_num_seqs_is_written_into_the_vllm_args_so_the_template_tells_the_truth():
    obj = deployment_object({"manifest": "manifests/samples/premium-llama-13b.yaml", "max_num_seqs": 4}, REPO)
    args = obj["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--max-num-seqs")] == ["--max-num-seqs=4"]
    plain = deployment_object({"name": "x", "max_num_seqs": 2})
    assert plain["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--max-num-seqs=2"
