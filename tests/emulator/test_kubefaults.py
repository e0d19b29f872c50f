"""The API emulator's fault-injection hook: chosen requests answer 500, 409 or slowly, the rest are served."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubefaults import Fault, Faults
from emulator.kubestore import KubeStore
from services.runtime.kube import load_api_client
from tests.collector.kubeobjects import add_deployment


@pytest.fixture
def api(tmp_path):
    store = KubeStore()
    add_deployment(store, "llm", "a", 1, labels={"app": "a"})
    add_deployment(store, "llm", "b", 1, labels={"app": "b"})
    faults = Faults(seed=7)
    with KubeApiServer(store, faults=faults) as server:
        api_client = load_api_client(write_kubeconfig(str(tmp_path / "kubeconfig"), server.url))
        yield client.AppsV1Api(api_client), faults, store
        api_client.close()


def test_a_matching_request_gets_the_injected_status_as_a_kubernetes_status(api) -> None:
    apps, faults, _ = api
    faults.add(Fault(verb="get", resource="deployments", name="a", status=500))
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("a", "llm")
    assert err.value.status == 500 and '"reason":"InternalError"' in err.value.body
    assert apps.read_namespaced_deployment("b", "llm").metadata.name == "b"
    assert [(v, r, n) for v, r, _, n, _ in faults.fired] == [("get", "deployments", "a")]


def test_times_limits_a_rule_and_a_409_says_conflict(api) -> None:
    apps, faults, store = api
    faults.add(Fault(verb="patch", resource="deployments/scale", status=409, times=1))
    body = {"spec": {"replicas": 3}}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("a", "llm", body)
    assert err.value.status == 409 and "Conflict" in err.value.body
    assert store.get("apps/v1", "deployments", "llm", "a")["spec"]["replicas"] == 1, "nothing written"
    apps.patch_namespaced_deployment_scale("a", "llm", body)
    assert store.get("apps/v1", "deployments", "llm", "a")["spec"]["replicas"] == 3


def test_a_slow_answer_is_served_after_the_delay_and_times_out_a_short_client(api) -> None:
    apps, faults, _ = api
    faults.add(Fault(verb="list", resource="deployments", delay_s=0.5))
    started = time.monotonic()
    assert len(apps.list_namespaced_deployment("llm").items) == 2
    assert time.monotonic() - started >= 0.5
    with pytest.raises(Exception):  # noqa: B017 - urllib3's ReadTimeoutError, whatever its wrapper
        apps.list_namespaced_deployment("llm", _request_timeout=0.1)


def test_random_rate_is_reproducible_from_the_seed() -> None:
    def draws(seed: int) -> list[bool]:
        faults = Faults([Fault(status=500, random_rate=0.3)], seed=seed)
        return [faults.pick("get", "pods", "ns", "p") is not None for _ in range(50)]
    assert draws(3) == draws(3) and draws(3) != draws(4)
    assert 5 < sum(draws(3)) < 25
