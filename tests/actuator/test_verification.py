"""The actuator trusts no request (issue 15): it verifies each against the Deployment it reads, caps replicas, writes
replicas before labels, and reports a Deployment whose write failed half-way. Against the emulated API with
injected faults."""

from __future__ import annotations

import pytest

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubefaults import Fault, Faults
from emulator.kubestore import KubeStore
from services.actuator import plan as p
from services.actuator.kube import KubeActuator
from services.core import labels as lb
from services.core.model import ActuationOutcome, Allocation, KubeRef, ManagedServer, Server
from services.runtime.kube import load_api_client
from tests.actuator.test_kube import NS, a100, actuate, create, deployment, read

OK = ActuationOutcome


@pytest.fixture
def faulty(tmp_path):
    """An emulated cluster whose API answers the injected faults; yields (ApiClient, Faults)."""
    faults = Faults(seed=3)
    with KubeApiServer(KubeStore(), faults=faults) as server:
        api = load_api_client(write_kubeconfig(str(tmp_path / "kubeconfig"), server.url))
        yield api, faults
        api.close()


@pytest.mark.parametrize(("allocation", "reason"), [
    pytest.param(a100(2147483647), "refused: allocation replicas must be within 0..10,000 replicas, got 2147483647",
                 id="replicas-int32-max"),
    pytest.param(a100(10_001), "refused: allocation replicas must be within 0..10,000", id="replicas-above-bound"),
    pytest.param(a100(3, batch=100_000), "refused: allocation batch size must be within 0..4,096", id="batch"),
    pytest.param(Allocation("bad accelerator!", 3, 16), "refused: accelerator 'bad accelerator!' is not a valid label",
                 id="accelerator-not-a-label-value"),
    pytest.param(Allocation("a" * 64, 3, 16), "refused: accelerator 'aaaa", id="accelerator-64-characters"),
])
def test_an_allocation_outside_the_bounds_is_refused_and_nothing_written(cluster, allocation, reason) -> None:
    create(cluster, deployment("granite", 2))
    before = read(cluster, "granite")
    [change] = actuate(cluster, {"granite": allocation})
    assert change.outcome is OK.SKIPPED and change.reason.startswith(reason), change.reason
    assert read(cluster, "granite")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_deployment_without_the_managed_label_is_refused(cluster) -> None:
    create(cluster, deployment("granite", 2, labels={lb.MANAGED: "false"}))
    [change] = actuate(cluster, {"granite": a100(5)})
    assert change.outcome is OK.SKIPPED and change.reason.startswith("refused: not a managed Deployment")
    assert read(cluster, "granite")["spec"]["replicas"] == 2


def test_a_deployment_of_another_server_is_refused(cluster) -> None:
    create(cluster, deployment("granite", 2, labels={lb.NAME: "someone-else"}))
    [change] = actuate(cluster, {"granite": a100(5)})
    assert change.reason.startswith("refused: the Deployment is server 'someone-else' (inferno.server.name), not "
                                    "'granite'")
    assert read(cluster, "granite")["spec"]["replicas"] == 2


def test_the_same_deployment_twice_in_one_call_is_refused_both_times(cluster) -> None:
    create(cluster, deployment("granite", 2))
    records = [ManagedServer(Server("granite"), KubeRef(NS, "granite")),
               ManagedServer(Server("other"), KubeRef(NS, "granite"))]
    changes = KubeActuator(cluster, p.PlanSettings()).actuate(records, {"granite": a100(5), "other": a100(7)}, False)
    assert [c.outcome for c in changes] == [OK.SKIPPED, OK.SKIPPED]
    assert all("is named 2 times in one call" in c.reason for c in changes)
    assert read(cluster, "granite")["spec"]["replicas"] == 2


@pytest.mark.parametrize(("labels", "settings", "replicas", "note"), [
    pytest.param({}, {"max_replicas": 100}, 100, "500 limited to the Deployment's maximum of 100 replicas",
                 id="the-setting-caps-replicas"),
    pytest.param({lb.MAX_REPLICAS: "7"}, {"max_replicas": 100}, 7, "maximum of 7 replicas", id="the-label-caps"),
    pytest.param({lb.MAX_REPLICAS: "9999999999"}, {"max_replicas": 100}, 100, "maximum of 100",
                 id="a-bad-label-falls-back-to-the-setting"),
    pytest.param({}, {"max_replicas": 100, "max_replica_change": 16}, 18, "change limited to 16",
                 id="the-change-limit-applies-within-the-cap"),
])
def test_replicas_never_exceed_the_deployments_maximum(cluster, labels, settings, replicas, note) -> None:
    create(cluster, deployment("granite", 2, labels=labels))
    [change] = actuate(cluster, {"granite": a100(500)}, **settings)
    assert change.outcome is OK.CHANGED and note in change.reason
    assert read(cluster, "granite")["spec"]["replicas"] == replicas


def test_the_maximum_wins_over_minreplicas(cluster) -> None:
    create(cluster, deployment("granite", 2, labels={lb.MAX_REPLICAS: "4"}))
    [change] = actuate(cluster, {"granite": a100(1)}, servers={"granite": Server("granite", min_replicas=1_000)})
    assert change.replicas_to == 4


def test_a_label_patch_failing_after_the_scale_is_reported_with_what_was_written(faulty) -> None:
    api, faults = faulty
    create(api, deployment("granite", 2, labels={lb.ACCELERATOR: "L40"}))
    faults.add(Fault(verb="patch", resource="deployments", status=500))
    [change] = actuate(api, {"granite": a100(5)})
    assert change.outcome is OK.FAILED
    assert change.reason == ("replicas 2 -> 5 written, labels / pod template not: Kubernetes API answered 500 "
                             "Internal Server Error")
    assert (change.replicas_from, change.replicas_to) == (2, 5)
    after = read(api, "granite")
    assert after["spec"]["replicas"] == 5, "replicas first"
    assert after["metadata"]["labels"][lb.ACCELERATOR] == "L40", "the labels never claim what was not reached"


def test_a_failing_scale_writes_nothing(faulty) -> None:
    api, faults = faulty
    create(api, deployment("granite", 2, labels={lb.ACCELERATOR: "L40"}))
    faults.add(Fault(verb="patch", resource="deployments/scale", status=500))
    [change] = actuate(api, {"granite": a100(5)})
    assert change.outcome is OK.FAILED and (change.replicas_from, change.replicas_to) == (2, 2)
    after = read(api, "granite")
    assert after["spec"]["replicas"] == 2 and after["metadata"]["labels"][lb.ACCELERATOR] == "L40"


def test_a_409_on_the_label_patch_after_the_scale_is_retried_without_scaling_twice(faulty) -> None:
    api, faults = faulty
    create(api, deployment("granite", 2, labels={lb.ACCELERATOR: "L40"}))
    faults.add(Fault(verb="patch", resource="deployments", status=409, times=1))
    [change] = actuate(api, {"granite": a100(5)})
    assert change.outcome is OK.CHANGED
    after = read(api, "granite")
    assert after["spec"]["replicas"] == 5 and after["metadata"]["labels"][lb.ACCELERATOR] == "A100"
    scales = [f for f in faults.fired if f[1] == "deployments/scale"]
    assert scales == []


def test_a_slow_api_fails_that_deployment_only(faulty) -> None:
    api, faults = faulty
    create(api, deployment("granite", 2), deployment("llama", 2))
    faults.add(Fault(verb="get", resource="deployments", name="granite", delay_s=0.6))
    actuator = KubeActuator(api, p.PlanSettings(), timeout_s=0.2)
    changes = actuate(api, {"granite": a100(5), "llama": a100(4)}, names=("granite", "llama"), actuator=actuator)
    assert [c.outcome for c in changes] == [OK.FAILED, OK.CHANGED]
    assert read(api, "llama")["spec"]["replicas"] == 4 and read(api, "granite")["spec"]["replicas"] == 2
