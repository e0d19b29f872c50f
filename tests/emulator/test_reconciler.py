"""The reconciler: Deployments in the store become emulated replicas shown as Pods, scaled both ways."""

from __future__ import annotations

import json
import time

import pytest
import requests
from kubernetes import client

from emulator import podtemplate
from emulator.kubestore import KubeStore
from emulator.reconciler import Reconciler

APPS = "apps/v1"


def deployment(name: str = "granite", replicas: int = 1, annotations: dict | None = None,
               args: list[str] | None = None) -> dict:
    """A managed inference-server Deployment with fast emulator perfParms."""
    labels = {"app": name, "inferno.server.managed": "true", "inferno.server.model": "granite_13b",
              "inferno.server.allocation.maxbatchsize": "8"}
    notes = {"inferno.emulator/alpha": "5", "inferno.emulator/beta": "0.01", "inferno.emulator/gamma": "0.001",
             **(annotations or {})}
    return {"metadata": {"name": name, "namespace": "llm", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels, "annotations": notes},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm", "args": args or []}]}}}}


def wait_for(check, timeout_s: float = 10.0) -> bool:
    """Poll ``check`` until true or timeout."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def reconciled(tmp_path):
    """(store, reconciler) with a 0.3 s start-up delay and a file_sd file, stopped afterwards."""
    store = KubeStore()
    reconciler = Reconciler(store, startup_delay_s=0.3, grace_s=2, sd_path=str(tmp_path / "sd.json")).start()
    yield store, reconciler
    reconciler.stop()


def test_pods_start_pending_then_run_with_template_labels_and_port(reconciled):
    store, reconciler = reconciled
    store.create(APPS, "deployments", "llm", deployment(replicas=2))
    assert wait_for(lambda: len(store.list("v1", "pods", "llm")) == 2)
    assert {p["status"]["phase"] for p in store.list("v1", "pods", "llm")} == {"Pending"}
    assert reconciler.wait_ready("llm", "granite", 2)
    assert wait_for(lambda: {p["status"]["phase"] for p in store.list("v1", "pods", "llm")} == {"Running"})
    pod = store.list("v1", "pods", "llm")[0]
    port = int(pod["metadata"]["annotations"][podtemplate.PORT_ANNOTATION])
    assert pod["spec"]["containers"][0]["ports"][0]["containerPort"] == port
    assert pod["status"]["podIP"] == "127.0.0.1"
    assert pod["metadata"]["labels"]["inferno.server.model"] == "granite_13b"
    replicaset = store.list(APPS, "replicasets", "llm")[0]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == replicaset["metadata"]["uid"]
    assert replicaset["metadata"]["ownerReferences"][0]["name"] == "granite"
    assert requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()["data"][0]["id"] == "granite_13b"
    assert wait_for(lambda: store.get(APPS, "deployments", "llm", "granite")["status"].get("readyReplicas") == 2)


def test_scaling_up_and_down_through_the_store(reconciled, tmp_path):
    store, reconciler = reconciled
    store.create(APPS, "deployments", "llm", deployment(replicas=1))
    assert reconciler.wait_ready("llm", "granite", 1)
    store.patch(APPS, "deployments", "llm", "granite", {"spec": {"replicas": 3}}, "merge")
    assert reconciler.wait_ready("llm", "granite", 3)
    assert wait_for(lambda: len(json.loads((tmp_path / "sd.json").read_text())) == 3)
    store.patch(APPS, "deployments", "llm", "granite", {"spec": {"replicas": 1}}, "merge")
    assert reconciler.wait_ready("llm", "granite", 1)
    assert wait_for(lambda: len(store.list("v1", "pods", "llm")) == 1)
    status = store.get(APPS, "deployments", "llm", "granite")["status"]
    assert (status["replicas"], status["availableReplicas"]) == (1, 1)
    labels = json.loads((tmp_path / "sd.json").read_text())
    assert wait_for(lambda: len(json.loads((tmp_path / "sd.json").read_text())) == 1)
    assert set(labels[0]["labels"]) == {"namespace", "pod", "deployment"}


def test_a_deleted_pod_is_replaced_and_a_deleted_deployment_stops_its_replicas(reconciled):
    store, reconciler = reconciled
    store.create(APPS, "deployments", "llm", deployment(replicas=1))
    assert reconciler.wait_ready("llm", "granite", 1)
    first = store.list("v1", "pods", "llm")[0]["metadata"]["name"]
    store.delete("v1", "pods", "llm", first)
    assert wait_for(lambda: [p["metadata"]["name"] for p in store.list("v1", "pods", "llm")] not in ([], [first]))
    store.delete(APPS, "deployments", "llm", "granite")
    assert wait_for(lambda: not reconciler.servers("llm", "granite"))
    assert store.list("v1", "pods", "llm") == []


def test_scale_down_lets_in_flight_requests_finish(reconciled):
    store, reconciler = reconciled
    store.create(APPS, "deployments", "llm", deployment(replicas=1))
    assert reconciler.wait_ready("llm", "granite", 1)
    url = reconciler.endpoints("llm", "granite")[0]
    response = requests.post(url + "/v1/completions", json={"prompt": "a", "max_tokens": 60, "stream": True},
                             stream=True, timeout=10)
    store.patch(APPS, "deployments", "llm", "granite", {"spec": {"replicas": 0}}, "merge")
    assert wait_for(lambda: reconciler.endpoints("llm", "granite") == [])
    lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]" and len(lines) == 61


@pytest.mark.parametrize(("annotations", "args", "expected"), [
    pytest.param({}, [], 8, id="maxbatchsize-label"),
    pytest.param({}, ["--max-num-seqs", "4"], 4, id="container-arg"),
    pytest.param({"inferno.emulator/max-num-seqs": "2"}, ["--max-num-seqs=4"], 2, id="annotation-first"),
])
def test_engine_params_come_from_the_pod_template(annotations, args, expected):
    params = podtemplate.engine_params(deployment(annotations=annotations, args=args), time_scale=0.5)
    assert (params.alpha_ms, params.beta_ms, params.gamma_ms) == (5, 0.01, 0.001)
    assert params.max_num_seqs == expected and params.time_scale == 0.5


@pytest.mark.parametrize(("annotations", "args", "expected"), [
    pytest.param({}, [], (16, 1 << 20, 8192, True), id="vllm-defaults"),
    pytest.param({}, ["--block-size", "32", "--num-gpu-blocks-override=100", "--max-num-batched-tokens", "2048",
                      "--no-enable-chunked-prefill"], (32, 3200, 2048, False), id="container-args"),
    pytest.param({}, ["--enable-chunked-prefill", "false", "--max-num-batched-tokens=4096"],
                 (16, 1 << 20, 4096, False), id="flag-with-value"),
    pytest.param({"inferno.emulator/kv-cache-tokens": "5000", "inferno.emulator/max-num-batched-tokens": "512",
                  "inferno.emulator/enable-chunked-prefill": "true", "inferno.emulator/block-size": "8"},
                 ["--num-gpu-blocks-override", "10", "--max-num-batched-tokens", "2048", "--no-enable-chunked-prefill"],
                 (8, 5000, 512, True), id="annotations-first"),
])
def test_kv_blocks_and_token_budget_come_from_the_vllm_args(annotations, args, expected):
    params = podtemplate.engine_params(deployment(annotations=annotations, args=args))
    assert (params.block_size, params.kv_cache_tokens, params.token_budget, params.enable_chunked_prefill) == expected


def test_max_model_len_comes_from_the_vllm_args():
    assert podtemplate.engine_params(deployment(args=["--max-model-len", "4096"])).max_model_len == 4096
    assert podtemplate.engine_params(deployment()).max_model_len is None


def test_scheduling_policy_comes_from_the_vllm_args():
    assert podtemplate.engine_params(deployment(args=["--scheduling-policy", "priority"])).scheduling_policy == \
        "priority"
    assert podtemplate.engine_params(deployment(args=["--scheduling-policy=priority"])).scheduling_policy == "priority"
    assert podtemplate.engine_params(deployment()).scheduling_policy == "fcfs"
    with pytest.raises(ValueError, match="scheduling_policy"):
        podtemplate.engine_params(deployment(args=["--scheduling-policy", "lifo"]))


@pytest.mark.parametrize(("annotations", "args", "message"), [
    pytest.param({}, ["--max-num-batched-tokens", "lots"], "max-num-batched-tokens", id="not-an-integer"),
    pytest.param({"inferno.emulator/enable-chunked-prefill": "maybe"}, [], "enable-chunked-prefill", id="not-a-bool"),
    pytest.param({}, ["--block-size", "0"], "block_size must be >= 1", id="zero-block"),
    pytest.param({"inferno.emulator/alpha": "-1"}, [], "alpha_ms must be a finite number >= 0", id="negative-alpha"),
    pytest.param({"inferno.emulator/time-scale": "0"}, [], "time_scale must be a finite number > 0", id="zero-scale"),
    pytest.param({"inferno.emulator/gamma": "nan"}, [], "gamma_ms must be a finite number >= 0", id="nan-gamma"),
    pytest.param({"inferno.emulator/kv-cache-tokens": "8"}, [], "at least one block", id="cache-under-a-block"),
])
def test_malformed_vllm_args_are_a_clear_error(annotations, args, message):
    with pytest.raises(ValueError, match=message):
        podtemplate.engine_params(deployment(annotations=annotations, args=args))


def test_scaling_through_the_official_client(kube_store, kube_client):
    reconciler = Reconciler(kube_store, startup_delay_s=0.2, grace_s=1).start()
    try:
        apps = client.AppsV1Api(kube_client)
        apps.create_namespaced_deployment("llm", deployment(replicas=1))
        assert reconciler.wait_ready("llm", "granite", 1)
        apps.patch_namespaced_deployment_scale("granite", "llm", {"spec": {"replicas": 2}})
        assert reconciler.wait_ready("llm", "granite", 2)
        core = client.CoreV1Api(kube_client)
        assert wait_for(lambda: [p.status.phase for p in core.list_namespaced_pod(
            "llm", label_selector="inferno.server.managed=true").items] == ["Running", "Running"])
        assert wait_for(lambda: apps.read_namespaced_deployment("granite", "llm").status.ready_replicas == 2)
    finally:
        reconciler.stop()
