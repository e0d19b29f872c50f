"""Events on the managed Deployments: every scale and every hold says why; nothing in a dry run; an unchanged
hold is not repeated every cycle."""

from __future__ import annotations

import pytest
from kubernetes import client

from services.actuator import plan as p
from services.actuator.events import event_for
from services.actuator.kube import KubeActuator
from services.core.model import ActuationOutcome, KubeRef, ManagedServer, Notice, Server
from tests.actuator.test_kube import NS, a100, actuate, create, deployment

OK = ActuationOutcome
REF = KubeRef(NS, "granite")


def events(api) -> list[tuple[str, str, str, str]]:
    """(involved Deployment, type, reason, message) of the Events in the namespace, oldest first."""
    items = client.CoreV1Api(api).list_namespaced_event(NS).items
    return [(e.involved_object.name, e.type, e.reason, e.message)
            for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)]


@pytest.mark.parametrize(("change", "expected"), [
    pytest.param(p.Change("g", REF, OK.CHANGED, "replicas 1 -> 3", 1, 3, 3), [("Normal", "ScaledUp")], id="up"),
    pytest.param(p.Change("g", REF, OK.CHANGED, "replicas 3 -> 1", 3, 1, 1), [("Normal", "ScaledDown")], id="down"),
    pytest.param(p.Change("g", REF, OK.UNCHANGED, "scale-down to 1 held at 3 (stabilization window)", 3, 3, 1),
                 [("Normal", "ScalingHeld")], id="held"),
    pytest.param(p.Change("g", REF, OK.SKIPPED, "replicas owned by HorizontalPodAutoscaler h", 2, 2, 4),
                 [("Normal", "ScalingHeld")], id="owned"),
    pytest.param(p.Change("g", REF, OK.UNCHANGED, "", 2, 2, 2), [], id="unchanged"),
    pytest.param(p.Change("g", REF, OK.CHANGED, "labels maxbatchsize", 2, 2, 2), [], id="labels-only"),
    pytest.param(p.Change("g", REF, OK.FAILED, "Kubernetes API answered 500", 2, 2, 3), [], id="failed"),
    pytest.param(p.Change("g", REF, OK.UNCHANGED, "batch 608 above the pod's --max-num-seqs 4: 4 applied (the "
                          "pod's limit wins)", 1, 1, 1), [("Warning", "BatchLimited")], id="batch-limited"),
])
def test_each_change_gets_the_event_that_says_why(change, expected) -> None:
    assert [(kind, reason) for kind, reason, _ in event_for(change)] == expected


def test_a_scale_is_an_event_on_the_deployment_with_the_reason(cluster) -> None:
    create(cluster, deployment("granite", 1))
    actuate(cluster, {"granite": a100(3)})
    assert events(cluster) == [("granite", "Normal", "ScaledUp", "replicas 1 -> 3")]
    [event] = client.CoreV1Api(cluster).list_namespaced_event(NS).items
    assert event.involved_object.kind == "Deployment" and event.source.component == "inferno-actuator"


def test_a_hold_is_an_event_once_until_its_reason_changes(cluster) -> None:
    create(cluster, deployment("granite", 4))
    now = [0.0]
    actuator = KubeActuator(cluster, p.PlanSettings(scale_down_stabilization_s=300), clock=lambda: now[0])
    for t in (0.0, 60.0, 120.0):
        now[0] = t
        actuate(cluster, {"granite": a100(2)}, actuator=actuator)
    held = [e for e in events(cluster) if e[2] == "ScalingHeld"]
    assert held == [("granite", "Normal", "ScalingHeld",
                     "wanted 2 replicas, kept 4: scale-down to 2 held at 4 (stabilization window)")]
    now[0] = 180.0
    actuate(cluster, {"granite": a100(1)}, actuator=actuator)
    assert len([e for e in events(cluster) if e[2] == "ScalingHeld"]) == 2


def test_a_dry_run_writes_no_event(cluster) -> None:
    create(cluster, deployment("granite", 1))
    actuate(cluster, {"granite": a100(3)}, dry_run=True)
    assert events(cluster) == []


def test_a_capped_batch_is_a_warning_event(cluster) -> None:
    create(cluster, deployment("granite", 1, args=("--max-num-seqs=4",)))
    actuate(cluster, {"granite": a100(1, batch=608)})
    assert events(cluster) == [("granite", "Warning", "BatchLimited",
                                "batch 608 above the pod's --max-num-seqs 4: 4 applied (the pod's limit wins)")]


def test_the_controllers_notices_become_events_on_the_servers_deployment_not_in_a_dry_run(cluster) -> None:
    create(cluster, deployment("granite", 1))
    warn = Notice("granite", "Warning", "ModelMismatch", "TTFT observed 2,500 ms vs predicted 40 ms")
    stranger = Notice("elsewhere", "Warning", "ModelMismatch", "not managed here")
    actuator = KubeActuator(cluster, p.PlanSettings())
    managed = [ManagedServer(Server("granite"), KubeRef(NS, "granite"))]
    actuator.actuate(managed, {"granite": a100(1)}, True, notices=[warn])
    assert events(cluster) == []
    actuator.actuate(managed, {"granite": a100(1)}, False, notices=[warn, stranger])
    assert events(cluster) == [("granite", "Warning", "ModelMismatch", "TTFT observed 2,500 ms vs predicted 40 ms")]
