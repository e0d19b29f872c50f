"""The actuation plan: each safety rule as a table, decided without any cluster."""

from __future__ import annotations

import pytest

from services.actuator import plan as p
from services.actuator.kube import patch_body
from services.core import labels as lb
from services.core import routing
from services.core.model import ActuationOutcome, Allocation, KubeRef, Load, ManagedServer, PoolClass, Server

REF = KubeRef("llm", "granite")
OK = ActuationOutcome


def alloc(replicas: int, accelerator: str = "A100", batch: int = 16) -> Allocation:
    return Allocation(accelerator=accelerator, num_replicas=replicas, max_batch=batch)


def state(replicas: int, **kw) -> p.DeploymentState:
    labels = {lb.ACCELERATOR: "A100", lb.MAX_BATCH: "16", **kw.pop("labels", {})}
    return p.DeploymentState(replicas=replicas, resource_version="7", labels=labels, **kw)


def decide(current: p.DeploymentState | None, allocation: Allocation | None, server: Server | None = None,
           load_measured: bool = True, **settings) -> p.Change:
    return p.plan_deployment("granite", REF, current, allocation, server, p.PlanSettings(**settings),
                             load_measured=load_measured)


@pytest.mark.parametrize(("current", "allocation", "server", "settings", "outcome", "replicas_to"), [
    pytest.param(3, alloc(5), Server("granite"), {}, OK.CHANGED, 5, id="scales_up_to_the_allocation"),
    pytest.param(5, alloc(2), Server("granite"), {}, OK.CHANGED, 2, id="scales_down_to_the_allocation"),
    pytest.param(4, alloc(4), Server("granite"), {}, OK.UNCHANGED, 4, id="already_allocated_is_unchanged"),
    pytest.param(3, None, Server("granite"), {}, OK.SKIPPED, 3, id="absent_from_solution_keeps_replicas"),
    pytest.param(3, Allocation(), Server("granite"), {}, OK.SKIPPED, 3, id="empty_allocation_keeps_replicas"),
    pytest.param(3, alloc(0), Server("granite", min_replicas=0), {}, OK.CHANGED, 0, id="zero_when_min_allows"),
    pytest.param(3, alloc(0), Server("granite", min_replicas=2), {}, OK.CHANGED, 2, id="zero_raised_to_min"),
    pytest.param(3, alloc(0), None, {}, OK.CHANGED, 1, id="zero_refused_when_min_unknown"),
    pytest.param(1, alloc(1), Server("granite", min_replicas=3), {}, OK.CHANGED, 3, id="never_below_min"),
    pytest.param(2, alloc(9), Server("granite"), {"max_replica_change": 2}, OK.CHANGED, 4, id="limited_up"),
    pytest.param(9, alloc(0), Server("granite"), {"max_replica_change": 3}, OK.CHANGED, 6, id="limited_down"),
    pytest.param(2, alloc(3), Server("granite"), {"max_replica_change": 2}, OK.CHANGED, 3, id="within_limit"),
])
def test_replicas_follow_the_safety_rules(current, allocation, server, settings, outcome, replicas_to) -> None:
    change = decide(state(current), allocation, server, **settings)
    assert (change.outcome, change.replicas_from, change.replicas_to) == (outcome, current, replicas_to)


@pytest.mark.parametrize(("measured", "current", "allocated", "replicas_to"), [
    pytest.param(False, 4, 2, 4, id="label_load_holds_scale_down"),
    pytest.param(False, 2, 4, 4, id="label_load_still_scales_up"),
    pytest.param(True, 4, 2, 2, id="measured_load_scales_down"),
])
def test_no_scale_down_on_a_load_that_was_not_measured(measured, current, allocated, replicas_to) -> None:
    change = decide(state(current), alloc(allocated), Server("granite"), load_measured=measured)
    assert change.replicas_to == replicas_to and change.desired_replicas == allocated
    assert ("held: load not measured" in change.reason) == (replicas_to > allocated)


def test_held_scale_down_still_moves_the_allocation_labels() -> None:
    change = decide(state(4), alloc(2, batch=32), Server("granite"), load_measured=False)
    assert change.outcome is OK.CHANGED and not change.scales and change.labels == {lb.MAX_BATCH: "32"}


def test_server_missing_from_solution_keeps_its_replicas() -> None:
    change = decide(state(3), None, Server("granite"))
    assert change.outcome is OK.SKIPPED and not change.scales and not change.patches
    assert "absent from the solution" in change.reason


def test_min_replicas_label_allows_zero_when_the_server_record_is_missing() -> None:
    current = state(2, labels={lb.MIN_REPLICAS: "0"})
    assert decide(current, alloc(0), None).replicas_to == 0


@pytest.mark.parametrize(("label", "expected"), [
    pytest.param("2", 2, id="whole"), pytest.param("2.0", 2, id="whole_written_as_decimal"),
    pytest.param("2.5", None, id="fraction_unknown"), pytest.param("-1", None, id="negative_unknown"),
    pytest.param("", None, id="absent_unknown"),
])
def test_min_replicas_label_is_parsed_as_the_collector_parses_it(label, expected) -> None:
    assert p.min_replicas(None, state(2, labels={lb.MIN_REPLICAS: label})) == expected


def test_deployment_owned_by_another_autoscaler_is_skipped_but_desired_is_known() -> None:
    change = decide(state(2, owner="HorizontalPodAutoscaler granite"), alloc(5), Server("granite"))
    assert change.outcome is OK.SKIPPED and change.replicas_to == 2 and change.desired_replicas == 5
    assert change.reason == "replicas owned by HorizontalPodAutoscaler granite"


def test_vanished_deployment_is_skipped_with_reason() -> None:
    change = decide(None, alloc(2), Server("granite"))
    assert change.outcome is OK.SKIPPED and "not found" in change.reason


def test_limited_change_reports_the_desired_target() -> None:
    change = decide(state(1), alloc(8), Server("granite"), max_replica_change=2)
    assert change.desired_replicas == 8 and "limited to 2" in change.reason


@pytest.mark.parametrize(("labels", "allocation", "patch"), [
    pytest.param({}, alloc(2), {}, id="labels_already_match"),
    pytest.param({lb.ACCELERATOR: "L40"}, alloc(2), {lb.ACCELERATOR: "A100"}, id="new_accelerator"),
    pytest.param({lb.MAX_BATCH: "8"}, alloc(2), {lb.MAX_BATCH: "16"}, id="new_batch"),
    pytest.param({lb.MAX_BATCH: "15"}, alloc(2), {}, id="batch_drift_within_tolerance"),
    pytest.param({}, Allocation("A100", 2, 16, max_queue=32), {lb.MAX_QUEUE: "32"}, id="queue_when_known"),
    pytest.param({}, alloc(2, batch=0), {}, id="batch_zero_leaves_label"),
])
def test_allocation_labels_are_patched_only_where_they_differ(labels, allocation, patch) -> None:
    change = decide(state(2, labels=labels), allocation, Server("granite"))
    assert dict(change.labels) == patch
    assert change.outcome is (OK.CHANGED if patch else OK.UNCHANGED)


NODE_LABELS = {"A100": {"gpu": "a100"}, "H100": {"gpu": "h100", "h100.only": "yes"}}


@pytest.mark.parametrize(("accelerator", "current", "patch"), [
    pytest.param("A100", {}, {"gpu": "a100"}, id="sets_the_accelerators_labels"),
    pytest.param("A100", {"gpu": "a100", "zone": "x"}, {}, id="already_selecting"),
    pytest.param("A100", {"gpu": "h100", "h100.only": "yes"}, {"gpu": "a100", "h100.only": None},
                 id="removes_other_accelerators_keys"),
    pytest.param("MI300", {"gpu": "h100"}, {}, id="unmapped_accelerator_leaves_selector"),
])
def test_node_selector_follows_the_accelerator(accelerator, current, patch) -> None:
    assert p.node_selector_patch(accelerator, current, NODE_LABELS) == patch


def test_node_selector_is_left_alone_by_default() -> None:
    change = decide(state(2, node_selector={"gpu": "h100"}), alloc(2), Server("granite"))
    assert change.node_selector == {} and not change.restarts_pods


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(("--model", "m"), ("--model", "m", "--max-num-seqs=16"), id="appended_when_absent"),
    pytest.param(("--max-num-seqs=8",), ("--max-num-seqs=16",), id="equals_form_rewritten"),
    pytest.param(("--max-num-seqs", "8", "--x"), ("--max-num-seqs", "16", "--x"), id="spaced_form_rewritten"),
])
def test_max_num_seqs_argument_follows_the_batch_size(args, expected) -> None:
    assert p.max_num_seqs_args(args, 16) == expected


def test_max_num_seqs_is_set_on_the_container_that_has_it_when_enabled() -> None:
    containers = (p.Container("sidecar", ("--x",)), p.Container("vllm", ("--max-num-seqs=32",)))
    change = decide(state(2, containers=containers), alloc(2), Server("granite"), set_max_num_seqs=True)
    assert change.container == p.Container("vllm", ("--max-num-seqs=16",)) and change.restarts_pods
    assert decide(state(2, containers=containers), alloc(2), Server("granite")).container is None


@pytest.mark.parametrize(("args", "limit"), [
    pytest.param(("--model", "m", "--max-num-seqs=4"), 4, id="equals"),
    pytest.param(("--max-num-seqs", "64", "--x"), 64, id="spaced"),
    pytest.param(("--model", "m"), None, id="absent"),
    pytest.param(("--max-num-seqs=lots",), None, id="unreadable"),
])
def test_the_pods_max_num_seqs_is_read_from_the_template(args, limit) -> None:
    assert p.pod_max_num_seqs((p.Container("sidecar", ()), p.Container("vllm", args))) == limit


@pytest.mark.parametrize("set_max_num_seqs", [False, True], ids=["labels-only", "set-max-num-seqs"])
def test_a_batch_above_the_pods_max_num_seqs_is_never_applied(set_max_num_seqs) -> None:
    """manifests/data's rule gives batch 608 for pods running --max-num-seqs 4: the pod's limit wins."""
    containers = (p.Container("vllm", ("--model", "m", "--max-num-seqs=4")),)
    current = state(1, containers=containers, labels={lb.MAX_BATCH: "4", lb.ACCELERATOR: "G2"})
    change = decide(current, alloc(1, "G2", batch=608), Server("granite"), set_max_num_seqs=set_max_num_seqs)
    assert change.labels == {} and change.container is None and change.outcome is OK.UNCHANGED
    assert "batch 608 above the pod's --max-num-seqs 4: 4 applied (the pod's limit wins)" in change.reason
    scaled = decide(current, alloc(2, "G2", batch=608), Server("granite"), set_max_num_seqs=set_max_num_seqs)
    assert scaled.replicas_to == 2 and scaled.labels == {} and scaled.container is None


@pytest.mark.parametrize(("label", "batch", "replicas", "patch"), [
    pytest.param("235", 224, 2, {}, id="drift-within-tolerance-is-left"),
    pytest.param("235", 180, 2, {lb.MAX_BATCH: "180"}, id="a-real-change-is-written"),
    pytest.param("235", 224, 3, {lb.MAX_BATCH: "224"}, id="written-with-a-scale"),
    pytest.param("x", 224, 2, {lb.MAX_BATCH: "224"}, id="unreadable-label-is-fixed"),
])
def test_the_batch_label_moves_only_when_the_allocation_really_changes(label, batch, replicas, patch) -> None:
    change = decide(state(2, labels={lb.MAX_BATCH: label}), alloc(replicas, batch=batch), Server("granite"))
    assert dict(change.labels) == patch


@pytest.mark.parametrize(("scalers", "owner"), [
    pytest.param([p.Autoscaler("HorizontalPodAutoscaler", "h", "Deployment", "granite")],
                 "HorizontalPodAutoscaler h", id="hpa_targeting_it"),
    pytest.param([p.Autoscaler("ScaledObject", "k", "", "granite")], "ScaledObject k", id="keda_default_kind"),
    pytest.param([p.Autoscaler("HorizontalPodAutoscaler", "h", "StatefulSet", "granite")], "", id="other_kind"),
    pytest.param([p.Autoscaler("HorizontalPodAutoscaler", "h", "Deployment", "other")], "", id="other_name"),
    pytest.param([], "", id="none"),
])
def test_owner_is_the_autoscaler_whose_target_is_the_deployment(scalers, owner) -> None:
    assert p.owner_of("granite", scalers) == owner


def test_plan_is_sorted_by_namespace_deployment_and_server() -> None:
    targets = [("b", KubeRef("ns2", "a")), ("z", KubeRef("ns1", "b")), ("a", KubeRef("ns1", "b")),
               ("c", KubeRef("ns1", "a"))]
    states = {ref: state(1) for _, ref in targets}
    managed = [ManagedServer(Server(name), ref) for name, ref in targets]
    changes = p.plan(managed, states, {"a": alloc(2)}, p.PlanSettings())
    assert [(c.ref.namespace, c.ref.name, c.server_name) for c in changes] == [
        ("ns1", "a", "c"), ("ns1", "b", "a"), ("ns1", "b", "z"), ("ns2", "a", "b")]
    assert changes == p.plan(list(reversed(managed)), states, {"a": alloc(2)}, p.PlanSettings())


def test_failed_change_keeps_the_replicas_it_found() -> None:
    change = decide(state(2), alloc(5), Server("granite")).failed("boom")
    assert (change.outcome, change.replicas_to, change.reason) == (OK.FAILED, 2, "boom")


def _forecast_server(rising: bool) -> Server:
    from services.core.model import ObservedMetrics

    observed = ObservedMetrics(measured_rate_rpm=300.0, forecast_rpm=420.0, forecast_lower_rpm=350.0,
                               forecast_upper_rpm=490.0, forecast_method="local-linear-trend", forecast_rising=rising)
    return Server("granite", min_replicas=1, observed=observed)


def test_pending_replicas_are_not_requested_twice() -> None:
    change = p.plan_deployment("granite", REF, state(3), alloc(3), _forecast_server(True), p.PlanSettings(),
                               ready_replicas=1)  # 2 of the 3 asked for are still starting
    assert (change.outcome, change.replicas_to, change.scales) == (OK.UNCHANGED, 3, False)


def test_no_scale_down_removes_a_replica_starting_for_a_rising_load() -> None:
    held = p.plan_deployment("granite", REF, state(4), alloc(2), _forecast_server(True), p.PlanSettings(),
                             ready_replicas=2)
    assert held.replicas_to == 4
    assert "scale-down to 2 held: the load forecast rises, 2 replicas starting" in held.reason
    calm = p.plan_deployment("granite", REF, state(4), alloc(2), _forecast_server(False), p.PlanSettings(),
                             ready_replicas=2)
    assert calm.replicas_to == 2


def test_a_pool_deployment_gets_its_routing_weights_as_an_annotation_only_when_they_change() -> None:
    server = Server("granite", pool_classes=(PoolClass("Premium", 0, Load(40)), PoolClass("Bronze", 1, Load(80))))
    allocation = Allocation("A100", 2, 16, class_rpm=(20.0, 40.0), class_latency_s=(1.0, 3.0))
    pool_labels = {routing.POOL_LABEL: "llama", routing.CLASSES_LABEL: "Premium.Bronze"}
    change = decide(state(2, labels=pool_labels), allocation, server)
    assert change.outcome is OK.CHANGED and change.reason == "routing weights" and not change.restarts_pods
    table = routing.parse(change.annotations[routing.ANNOTATION])
    assert table.pool == "llama" and [(c.name, c.priority, c.rpm) for c in table.classes] == [
        ("Premium", 0, {"granite": 40.0}), ("Bronze", 1, {"granite": 80.0})]
    assert patch_body(change, "7")["metadata"]["annotations"] == dict(change.annotations)
    written = state(2, labels=pool_labels, annotations=dict(change.annotations))
    assert decide(written, allocation, server).outcome is OK.UNCHANGED
    # no pool label, or no per-class rates: no annotation
    assert decide(state(2), allocation, server).annotations == {}
    assert decide(state(2, labels=pool_labels), alloc(2), server).annotations == {}


def _sized(rising: bool, current: float, point: float, upper: float, backlog: float = 0.0) -> Server:
    """A server as the collector sends it with a forecast: its load is the rate sized for (the upper bound when
    rising, else the current rate) plus the backlog rate."""
    from services.core.model import ObservedMetrics

    observed = ObservedMetrics(measured_rate_rpm=current, forecast_rpm=point, forecast_lower_rpm=current,
                               forecast_upper_rpm=upper, forecast_method="local-linear-trend", forecast_rising=rising)
    sized = max(upper, current) if rising else current
    return Server("granite", min_replicas=1, current=Allocation(load=Load(sized + backlog)), observed=observed)


@pytest.mark.parametrize(("allocated", "server", "expected"), [
    pytest.param(7, _sized(True, 300.0, 420.0, 490.0), 6, id="rising_point_below_upper"),
    pytest.param(8, _sized(True, 300.0, 420.0, 490.0, backlog=70.0), 7, id="backlog_kept"),
    pytest.param(7, _sized(True, 300.0, 280.0, 490.0), 5, id="point_below_current_counts_the_current_rate"),
    pytest.param(5, _sized(False, 300.0, 250.0, 330.0), 5, id="falling_forecast_keeps_the_current_answer"),
    pytest.param(5, _sized(False, 300.0, 340.0, 380.0), 5, id="not_rising_sized_on_current"),
    pytest.param(5, Server("granite", current=Allocation(load=Load(300.0))), 5, id="no_forecast"),
    pytest.param(0, _sized(True, 300.0, 420.0, 490.0), 0, id="zero_stays_zero"),
])
def test_point_replicas_scale_the_allocation_to_the_point_forecast(allocated: int, server: Server,
                                                                    expected: int) -> None:
    assert p.point_replicas(allocated, server) == expected


def test_scale_up_follows_the_upper_bound_and_scale_down_the_point_forecast() -> None:
    from services.actuator.stabilize import ScaleDownWindow

    window, replicas = ScaleDownWindow(300.0), 4
    # (t, server as forecast, optimizer's replicas for the load sized for: ~70 req/min per replica)
    cycles = [(0.0, _sized(True, 300.0, 420.0, 490.0), 7),   # a rise: sized for its upper bound 490
              (60.0, _sized(False, 410.0, 400.0, 470.0), 6),  # the rise ended near the point forecast
              (120.0, _sized(False, 340.0, 330.0, 400.0), 5)]  # a dip
    went = []
    for now_s, server, allocated in cycles:
        hold_at = window.highest(REF, now_s, replicas)
        change = p.plan_deployment("granite", REF, state(replicas), alloc(allocated), server, p.PlanSettings(),
                                   hold_at)
        window.record(REF, change.hold_replicas, now_s)
        replicas = change.replicas_to
        went.append((change.desired_replicas, change.hold_replicas, replicas))
    # scale-up to the upper bound's 7; the window remembers the point forecast's 6 (ceil(7 x 420 / 490)): once
    # the load settles at 6 replicas' worth the 7th goes without waiting out the window, and a dip is held at 6
    assert went == [(7, 6, 7), (6, 6, 6), (5, 5, 6)]
