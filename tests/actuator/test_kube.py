"""The actuator against the emulated Kubernetes API, through the official client: every safety rule."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from services.actuator import plan as p
from services.actuator.kube import KubeActuator
from services.core import labels as lb
from services.core.model import ActuationOutcome, Allocation, KubeRef, ManagedServer, Server

NS = "llm"
OK = ActuationOutcome


def deployment(name: str, replicas: int, *, labels: dict | None = None, args: tuple = ()) -> dict:
    pod_labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "inferno.server.managed": "true", "inferno.server.name": name,
            lb.ACCELERATOR: "A100", lb.MAX_BATCH: "16", **(labels or {})}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": pod_labels}, "template": {
            "metadata": {"labels": pod_labels},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai", "args": list(args)}]}}},
    }


def create(api, *specs: dict) -> None:
    apps = client.AppsV1Api(api)
    for spec in specs:
        apps.create_namespaced_deployment(NS, spec)


def read(api, name: str) -> dict:
    return json.loads(client.AppsV1Api(api).read_namespaced_deployment(name, NS, _preload_content=False).data)


def actuate(api, allocations: dict, names=("granite",), servers=None, dry_run=False, actuator=None, **settings):
    actuator = actuator or KubeActuator(api, p.PlanSettings(**settings))
    servers = {n: Server(n) for n in names} if servers is None else servers
    return actuator.actuate([ManagedServer(servers[n], KubeRef(NS, n)) for n in names], allocations, dry_run)


def a100(replicas: int, batch: int = 16) -> Allocation:
    return Allocation(accelerator="A100", num_replicas=replicas, max_batch=batch)


def test_allocation_scales_through_the_scale_subresource_and_labels_the_deployment(cluster) -> None:
    create(cluster, deployment("granite", 2, labels={lb.ACCELERATOR: "L40"}))
    [change] = actuate(cluster, {"granite": a100(5, batch=32)})
    after = read(cluster, "granite")
    assert (change.outcome, change.replicas_from, change.replicas_to) == (OK.CHANGED, 2, 5)
    assert after["spec"]["replicas"] == 5
    assert after["metadata"]["labels"][lb.ACCELERATOR] == "A100"
    assert after["metadata"]["labels"][lb.MAX_BATCH] == "32"
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai"


def test_deployment_already_as_allocated_is_unchanged_and_not_written(cluster) -> None:
    create(cluster, deployment("granite", 3))
    before = read(cluster, "granite")["metadata"]["resourceVersion"]
    [change] = actuate(cluster, {"granite": a100(3)})
    assert change.outcome is OK.UNCHANGED
    assert read(cluster, "granite")["metadata"]["resourceVersion"] == before


def test_server_missing_from_solution_keeps_its_replicas(cluster) -> None:
    create(cluster, deployment("granite", 3))
    [change] = actuate(cluster, {})
    assert change.outcome is OK.SKIPPED and "absent from the solution" in change.reason
    assert read(cluster, "granite")["spec"]["replicas"] == 3


@pytest.mark.parametrize(("min_replicas", "expected"), [
    pytest.param(0, 0, id="zero_when_min_replicas_allow_it"),
    pytest.param(2, 2, id="min_replicas_when_they_do_not"),
])
def test_zero_allocation_scales_to_zero_only_when_min_replicas_allow(cluster, min_replicas, expected) -> None:
    create(cluster, deployment("granite", 3))
    actuate(cluster, {"granite": a100(0)}, servers={"granite": Server("granite", min_replicas=min_replicas)})
    assert read(cluster, "granite")["spec"]["replicas"] == expected


def test_replica_change_per_cycle_is_limited_when_configured(cluster) -> None:
    create(cluster, deployment("granite", 1))
    [change] = actuate(cluster, {"granite": a100(6)}, max_replica_change=2)
    assert (change.replicas_to, change.desired_replicas) == (3, 6)
    assert read(cluster, "granite")["spec"]["replicas"] == 3


def test_dry_run_reports_the_change_without_writing(cluster) -> None:
    create(cluster, deployment("granite", 2, labels={lb.ACCELERATOR: "L40"}))
    before = read(cluster, "granite")
    [change] = actuate(cluster, {"granite": a100(4)}, dry_run=True)
    after = read(cluster, "granite")
    assert (change.outcome, change.replicas_to) == (OK.CHANGED, 4)
    assert change.result(dry_run=True).dry_run
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["replicas"] == 2 and after["metadata"]["labels"][lb.ACCELERATOR] == "L40"


def test_hpa_owned_deployment_is_skipped_with_reason(cluster) -> None:
    create(cluster, deployment("granite", 2))
    client.AutoscalingV2Api(cluster).create_namespaced_horizontal_pod_autoscaler(NS, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "granite-hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "granite"},
                 "minReplicas": 1, "maxReplicas": 8}})
    [change] = actuate(cluster, {"granite": a100(5)})
    assert change.outcome is OK.SKIPPED
    assert change.reason == "replicas owned by HorizontalPodAutoscaler granite-hpa"
    assert read(cluster, "granite")["spec"]["replicas"] == 2


def test_keda_owned_deployment_is_skipped_with_reason(cluster) -> None:
    create(cluster, deployment("granite", 2))
    client.CustomObjectsApi(cluster).create_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "granite-keda"},
        "spec": {"scaleTargetRef": {"name": "granite"}, "triggers": []}})
    [change] = actuate(cluster, {"granite": a100(5)})
    assert (change.outcome, change.reason) == (OK.SKIPPED, "replicas owned by ScaledObject granite-keda")
    assert read(cluster, "granite")["spec"]["replicas"] == 2


def test_vanished_deployment_is_reported_and_the_others_still_act(cluster) -> None:
    create(cluster, deployment("llama", 1))
    gone, llama = actuate(cluster, {"granite": a100(2), "llama": a100(2)}, names=("granite", "llama"))
    assert (gone.outcome, llama.outcome) == (OK.SKIPPED, OK.CHANGED)
    assert "not found" in gone.reason
    assert read(cluster, "llama")["spec"]["replicas"] == 2


def test_once_the_caller_stops_waiting_the_remaining_deployments_are_neither_read_nor_written(cluster) -> None:
    create(cluster, deployment("granite", 1), deployment("llama", 1))
    answers = iter([True, False])
    actuator = KubeActuator(cluster, p.PlanSettings())
    granite, llama = actuator.actuate([ManagedServer(Server(n), KubeRef(NS, n)) for n in ("granite", "llama")],
                                      {"granite": a100(2), "llama": a100(3)}, False,
                                      proceed=lambda: next(answers))
    assert (granite.outcome, llama.outcome) == (OK.CHANGED, OK.FAILED)
    assert llama.reason.startswith("not attempted: the caller stopped waiting")
    assert read(cluster, "granite")["spec"]["replicas"] == 2 and read(cluster, "llama")["spec"]["replicas"] == 1


def test_scale_down_waits_for_the_stabilization_window_scale_up_does_not(cluster) -> None:
    create(cluster, deployment("granite", 4))
    now = [0.0]
    actuator = KubeActuator(cluster, p.PlanSettings(scale_down_stabilization_s=300), clock=lambda: now[0])
    [first] = actuate(cluster, {"granite": a100(4)}, actuator=actuator)  # the window sees 4 wanted at t=0
    now[0] = 60.0
    [held] = actuate(cluster, {"granite": a100(2)}, actuator=actuator)
    assert (held.outcome, held.replicas_to, held.desired_replicas) == (OK.UNCHANGED, 4, 2)
    assert "held at 4 (stabilization window)" in held.reason and read(cluster, "granite")["spec"]["replicas"] == 4
    now[0] = 120.0
    [up] = actuate(cluster, {"granite": a100(6)}, actuator=actuator)
    assert up.replicas_to == 6 and read(cluster, "granite")["spec"]["replicas"] == 6
    now[0] = 421.0  # the 6 of t=120 has left the window; the 2 of t=60 too
    [down] = actuate(cluster, {"granite": a100(2)}, actuator=actuator)
    assert down.replicas_to == 2 and read(cluster, "granite")["spec"]["replicas"] == 2
    assert first.outcome is OK.UNCHANGED


def test_the_window_remembers_the_point_forecast_count_not_the_upper_bound_one(cluster) -> None:
    from services.core.model import Load, ObservedMetrics

    create(cluster, deployment("granite", 4))
    now = [0.0]
    actuator = KubeActuator(cluster, p.PlanSettings(scale_down_stabilization_s=300), clock=lambda: now[0])
    rising = ObservedMetrics(measured_rate_rpm=300.0, forecast_rpm=420.0, forecast_lower_rpm=300.0,
                             forecast_upper_rpm=490.0, forecast_method="local-linear-trend", forecast_rising=True)
    sized = Server("granite", min_replicas=1, current=Allocation(load=Load(490.0)), observed=rising)
    [up] = actuate(cluster, {"granite": a100(7)}, servers={"granite": sized}, actuator=actuator)
    assert (up.replicas_to, up.hold_replicas) == (7, 6)  # up to the upper bound's 7; 6 for the point, 420
    now[0] = 60.0
    [down] = actuate(cluster, {"granite": a100(5)}, actuator=actuator)  # no forecast now: 5 wanted
    assert "held at 6 (stabilization window)" in down.reason and read(cluster, "granite")["spec"]["replicas"] == 6


class ConcurrentWriter(KubeActuator):
    """A KubeActuator with another writer that bumps the named Deployments right after each read."""

    def __init__(self, api, bumps: dict[str, int]) -> None:
        super().__init__(api, p.PlanSettings())
        self.api, self.bumps, self.reads = api, bumps, 0

    def _read(self, ref, scalers):
        state = super()._read(ref, scalers)
        self.reads += 1
        if self.bumps.get(ref.name, 0) > 0:
            self.bumps[ref.name] -= 1
            client.AppsV1Api(self.api).patch_namespaced_deployment(
                ref.name, ref.namespace, {"metadata": {"annotations": {"bumped": str(self.reads)}}},
                _content_type="application/merge-patch+json")
        return state


def test_conflict_is_retried_on_a_fresh_read(cluster) -> None:
    create(cluster, deployment("granite", 1, labels={lb.ACCELERATOR: "L40"}))
    writer = ConcurrentWriter(cluster, {"granite": 1})
    [change] = actuate(cluster, {"granite": a100(3)}, actuator=writer)
    assert change.outcome is OK.CHANGED and writer.reads == 2
    after = read(cluster, "granite")
    assert after["spec"]["replicas"] == 3 and after["metadata"]["annotations"]["bumped"] == "1"
    assert after["metadata"]["labels"][lb.ACCELERATOR] == "A100"


def test_persistent_conflict_fails_that_deployment_only(cluster) -> None:
    create(cluster, deployment("granite", 1), deployment("llama", 1))
    writer = ConcurrentWriter(cluster, {"granite": 10})
    granite, llama = actuate(cluster, {"granite": a100(3), "llama": a100(2)}, names=("granite", "llama"),
                             actuator=writer)
    assert (granite.outcome, granite.replicas_to) == (OK.FAILED, 1)
    assert "conflict persisted after 3 attempts" in granite.reason
    assert llama.outcome is OK.CHANGED and read(cluster, "llama")["spec"]["replicas"] == 2
    assert read(cluster, "granite")["spec"]["replicas"] == 1


def test_node_selector_and_max_num_seqs_are_set_only_when_enabled(cluster) -> None:
    create(cluster, deployment("granite", 1, args=("--model", "m", "--max-num-seqs=8")))
    actuate(cluster, {"granite": a100(1, batch=32)})
    pod = read(cluster, "granite")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod or not pod["nodeSelector"]
    assert pod["containers"][0]["args"][-1] == "--max-num-seqs=8"
    [capped] = actuate(cluster, {"granite": a100(1, batch=32)}, set_max_num_seqs=True,
                       accelerator_node_labels={"A100": {"nvidia.com/gpu.product": "A100"}})
    pod = read(cluster, "granite")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert pod["containers"][0]["args"] == ["--model", "m", "--max-num-seqs=8"], "never raised past the pod's limit"
    assert "batch 32 above the pod's --max-num-seqs 8: 8 applied" in capped.reason
    actuate(cluster, {"granite": a100(1, batch=6)}, set_max_num_seqs=True)
    pod = read(cluster, "granite")["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["--model", "m", "--max-num-seqs=6"]
    assert pod["containers"][0]["image"] == "vllm/vllm-openai"


def test_a_dry_run_leaves_the_stabilization_window_untouched(cluster) -> None:
    create(cluster, deployment("granite", 4))
    now = [0.0]
    actuator = KubeActuator(cluster, p.PlanSettings(scale_down_stabilization_s=300), clock=lambda: now[0])
    actuate(cluster, {"granite": a100(4)}, actuator=actuator)  # the window sees 4 wanted at t=0
    now[0] = 200.0
    [advice] = actuate(cluster, {"granite": a100(8)}, actuator=actuator, dry_run=True)  # 8 would be wanted
    assert advice.replicas_to == 8 and read(cluster, "granite")["spec"]["replicas"] == 4
    now[0] = 301.0  # the real 4 of t=0 has left the window; the advised 8 was never recorded
    [down] = actuate(cluster, {"granite": a100(2)}, actuator=actuator)
    assert down.replicas_to == 2 and read(cluster, "granite")["spec"]["replicas"] == 2
