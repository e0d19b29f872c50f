"""What the actuator should do to each Deployment: allocations + current Deployment state -> changes.

Pure: every safety rule is decided here, the kube module only reads and writes. The rules:
- a server absent from the solution (or with an empty allocation) keeps its replicas;
- zero replicas only when the allocation says zero and the server's min replicas (known) allow it;
- never below the min replicas; at most ``max_replica_change`` replicas per cycle (0 = unlimited);
- a scale-down stops at the highest count of the stabilization window (``hold_at``, see stabilize.py), never
  above the current replicas; with a load forecast (issue 22, docs/contract.md s9) the allocation is sized for
  the forecast's upper bound when it rises (scale-up), while the window remembers the count for the point
  forecast (``Change.hold_replicas``, point_replicas): a scale-down goes no lower than this cycle's allocation
  nor than the highest point-forecast count of the window, so a replica the coming load needs stays, and the
  upper bounds of a rise that has ended do not hold replicas for the whole window;
- no scale-down while the load forecast rises (issue 22: a replica removed now, Ready or starting, is one the
  coming load needs);
- no scale-down on a load that was not measured (``ManagedServer.load_measured``, decided by the collector:
  the load came from the labels and no live figure was read), as an HPA holds on missing metrics; scaling up
  on it is allowed. An idle server (its metrics read, no request completed in the window) may scale down;
- never above the Deployment's replica cap: its ``inferno.server.maxreplicas`` label, else the setting
  INFERNO_MAX_REPLICAS (``max_replicas``), as an HPA's maxReplicas; the cap wins over min replicas;
- a Deployment whose replicas an autoscaler (HPA, KEDA ScaledObject) owns is skipped;
- a vanished Deployment is skipped and reported;
- refusal() says when a request must not be applied at all (the Deployment read is not managed, carries
  another server's name, or the allocation is outside the bounds or not a valid label value).
Changes come out sorted by (namespace, Deployment, server), so the order is stable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from services.core import bounds, routing
from services.core import labels as lb
from services.core.labels import LabelValueError
from services.core.model import (
    ActuationOutcome,
    ActuationResult,
    Allocation,
    DeploymentOutcome,
    KubeRef,
    ManagedServer,
    Server,
    forecast_sizing_rpm,
)

MAX_NUM_SEQS = "--max-num-seqs"
NOT_ATTEMPTED = "not attempted: the caller stopped waiting (deadline passed or cancelled)"
"""The reason of a Deployment the actuator did not reach in its call (nothing read or written)."""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Autoscaler:
    """Another autoscaler found in a namespace: ``kind`` (HorizontalPodAutoscaler | ScaledObject), its name
    and the kind and name of the object its scaleTargetRef names."""

    kind: str
    name: str
    target_kind: str
    target_name: str


@dataclass(frozen=True, slots=True)
class Container:
    """One container of the pod template: its name and args."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """What was read of one Deployment: spec replicas, resourceVersion, labels, pod-template nodeSelector and
    containers, ``owner`` = the autoscaler owning its replicas ("Kind namespace/name"; "" = none), and its
    ``annotations``."""

    replicas: int
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[Container, ...] = ()
    owner: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))
        object.__setattr__(self, "node_selector", _frozen(self.node_selector))


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """Actuation settings: replicas changed per cycle at most (0 = unlimited); accelerator name -> node labels
    for the pod template's nodeSelector (empty = never touch it); whether to set vLLM's --max-num-seqs; the
    scale-down stabilization window in seconds (0 = none; stabilize.py)."""

    max_replica_change: int = 0
    accelerator_node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    set_max_num_seqs: bool = False
    scale_down_stabilization_s: float = 0.0
    max_replicas: int = bounds.MAX_REPLICAS
    """Replica cap of a Deployment without a valid maxreplicas label (INFERNO_MAX_REPLICAS)."""


@dataclass(frozen=True, slots=True)
class Change(DeploymentOutcome):
    """The plan for one Deployment and, after actuation, its outcome.

    ``desired_replicas`` is the target before the per-cycle limit (None without an allocation);
    ``hold_replicas`` the count the stabilization window remembers for this cycle: ``desired_replicas`` sized
    for the point forecast instead of its upper bound (point_replicas; the same without a forecast); ``labels``
    are labels to set; ``node_selector`` maps keys to set (None = remove); ``container`` carries the new args
    of the container to rewrite (None = leave the template's containers alone); ``annotations`` are the
    Deployment's annotations to set (a pool's routing weights, docs/contract.md s10).
    """

    desired_replicas: int | None = None
    accelerator: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str | None] = field(default_factory=dict)
    container: Container | None = None
    resource_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    hold_replicas: int | None = None

    @property
    def scales(self) -> bool:
        """True when spec.replicas must change."""
        return self.replicas_to != self.replicas_from

    @property
    def patches(self) -> bool:
        """True when the Deployment's labels, annotations or pod template must change."""
        return bool(self.labels or self.node_selector or self.container or self.annotations)

    @property
    def restarts_pods(self) -> bool:
        """True when the change touches the pod template (which rolls the pods)."""
        return bool(self.node_selector or self.container)

    def result(self, dry_run: bool = False) -> ActuationResult:
        """The reportable result of this change."""
        return ActuationResult(self.server_name, self.ref, self.outcome, self.reason, self.replicas_from,
                               self.replicas_to, self.accelerator, dry_run)

    def failed(self, reason: str) -> Change:
        """This change marked failed with ``reason`` (replicas_to falls back to replicas_from)."""
        return replace(self, outcome=ActuationOutcome.FAILED, reason=reason, replicas_to=self.replicas_from)


def sort_key(server_name: str, ref: KubeRef) -> tuple[str, str, str]:
    """The order of changes: namespace, Deployment name, server name."""
    return (ref.namespace, ref.name, server_name)


def owner_of(deployment: str, autoscalers: Iterable[Autoscaler]) -> str:
    """The first autoscaler (by kind, name) whose target is Deployment ``deployment``, as "Kind name"; "" if none."""
    for scaler in sorted(autoscalers, key=lambda a: (a.kind, a.name)):
        if scaler.target_kind in ("Deployment", "") and scaler.target_name == deployment:
            return f"{scaler.kind} {scaler.name}"
    return ""


def min_replicas(server: Server | None, state: DeploymentState) -> int | None:
    """The server's min replicas: from the server record, else the Deployment's label (parsed as the collector
    parses it); None when unknown or malformed."""
    if server is not None:
        return server.min_replicas
    try:
        return lb.parse_count(state.labels.get(lb.MIN_REPLICAS, ""))
    except LabelValueError:
        return None


def replica_floor(minimum: int | None) -> int:
    """The fewest replicas an allocation may ask for: the server's min replicas, 1 when unknown (so zero
    needs a known minimum of 0)."""
    return 1 if minimum is None else minimum


def target_replicas(allocated: int, minimum: int | None, current: int, max_change: int,
                    hold_at: int = 0, maximum: int = 0) -> tuple[int, int, list[str]]:
    """(desired, target this cycle, notes): desired is ``allocated`` raised to ``minimum`` (unknown = 1, so
    zero needs a known minimum of 0), then lowered to ``maximum`` (the replica cap; 0 = none; it wins over
    the minimum, as an HPA's maxReplicas); a scale-down stops at ``hold_at`` (the stabilization window's highest
    desired count; 0 = none) but never rises above ``current``; the target moves from ``current`` by at most
    ``max_change`` (0 = no limit)."""
    notes = []
    desired = max(allocated, replica_floor(minimum))
    if desired != allocated:
        why = "min replicas unknown" if minimum is None else f"min replicas {minimum}"
        notes.append(f"allocation of {allocated} raised to {desired} ({why})")
    if maximum and desired > maximum:
        notes.append(f"{desired} limited to the Deployment's maximum of {maximum} replicas")
        desired = maximum
    target = desired
    if desired < current and hold_at > desired:
        target = min(current, hold_at)
        notes.append(f"scale-down to {desired} held at {target} (stabilization window)")
    if max_change > 0 and abs(target - current) > max_change:
        target = current + max_change if target > current else current - max_change
        notes.append(f"change limited to {max_change} per cycle (desired {desired})")
    return desired, target, notes


SIZE_TOLERANCE = 0.2
"""A batch or queue size label is rewritten only when the allocation really changes: the accelerator or the
replicas change, the label is missing or unreadable, or the size moves by more than this share of the
label's value (token averages drifting from one cycle to the next move the batch rule by a few percent)."""


def _moved(current: str | None, wanted: int) -> bool:
    try:
        value = int(current or "")
    except ValueError:
        return True
    return value <= 0 or abs(wanted - value) > SIZE_TOLERANCE * value


def _label_patch(allocation: Allocation, batch: int, labels: Mapping[str, str], scales: bool) -> dict[str, str]:
    """Labels to set: the accelerator when it differs; batch (already bounded) and queue sizes when the
    allocation really changes (SIZE_TOLERANCE)."""
    new_accelerator = labels.get(lb.ACCELERATOR) != allocation.accelerator
    patch = {lb.ACCELERATOR: allocation.accelerator} if new_accelerator else {}
    for key, size in ((lb.MAX_BATCH, batch), (lb.MAX_QUEUE, allocation.max_queue)):
        current = labels.get(key)
        if size > 0 and current != str(size) and (new_accelerator or scales or _moved(current, size)):
            patch[key] = str(size)
    return dict(sorted(patch.items()))


def pod_max_num_seqs(containers: Iterable[Container]) -> int | None:
    """The --max-num-seqs the pod template's containers run with (``--max-num-seqs=N`` or ``--max-num-seqs N``;
    the first one given), or None when no container sets it (or its value is not a positive integer)."""
    for container in containers:
        args = list(container.args)
        for i, arg in enumerate(args):
            value = arg.partition("=")[2] if arg.startswith(MAX_NUM_SEQS + "=") else (
                args[i + 1] if arg == MAX_NUM_SEQS and i + 1 < len(args) else None)
            if value is not None:
                return int(value) if value.isdigit() and int(value) > 0 else None
    return None


BATCH_LIMITED = "the pod's limit wins"
"""Ends the note of a batch capped at the pod's --max-num-seqs (events.py writes a BatchLimited Event for it)."""


def bounded_batch(batch: int, limit: int | None, notes: list[str]) -> int:
    """The batch size to apply: the allocation's, at most the pod's --max-num-seqs ``limit`` (a hard upper
    bound: the operator sized the replica's memory for it; the pod's limit wins), with a note when capped."""
    if limit is not None and batch > limit:
        notes.append(f"batch {batch} above the pod's {MAX_NUM_SEQS} {limit}: {limit} applied ({BATCH_LIMITED})")
        return limit
    return batch


def node_selector_patch(accelerator: str, current: Mapping[str, str],
                        node_labels: Mapping[str, Mapping[str, str]]) -> dict[str, str | None]:
    """Keys to set (value) or remove (None) so the nodeSelector selects ``accelerator``'s nodes: its labels are
    set and other mapped accelerators' label keys are removed. Empty when the accelerator is not mapped."""
    wanted = node_labels.get(accelerator)
    if wanted is None:
        return {}
    patch: dict[str, str | None] = {key: value for key, value in wanted.items() if current.get(key) != value}
    for other, labels in node_labels.items():
        if other != accelerator:
            patch.update({key: None for key in labels if key in current and key not in wanted})
    return dict(sorted(patch.items()))


def max_num_seqs_args(args: tuple[str, ...], batch: int) -> tuple[str, ...]:
    """``args`` with --max-num-seqs set to ``batch`` (both ``--max-num-seqs=N`` and ``--max-num-seqs N``
    spellings are rewritten in place; appended as ``--max-num-seqs=N`` when absent)."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg.startswith(MAX_NUM_SEQS + "="):
            out[i] = f"{MAX_NUM_SEQS}={batch}"
            return tuple(out)
        if arg == MAX_NUM_SEQS and i + 1 < len(out):
            out[i + 1] = str(batch)
            return tuple(out)
    return (*out, f"{MAX_NUM_SEQS}={batch}")


def _container_patch(containers: tuple[Container, ...], batch: int) -> Container | None:
    if batch <= 0 or not containers:
        return None
    chosen = next((c for c in containers if any(a.startswith(MAX_NUM_SEQS) for a in c.args)), containers[0])
    args = max_num_seqs_args(chosen.args, batch)
    return None if args == chosen.args else Container(chosen.name, args)


def refusal(server_name: str, state: DeploymentState, allocation: Allocation | None) -> str:
    """Why the actuator must not write to this Deployment at all ("" when it may), checked against what was
    read from the cluster: it must carry ``inferno.server.managed: "true"`` and the server name it is asked
    for, and the allocation must be within the bounds (services.core.bounds) with an accelerator that is a
    valid label value. Names and values in the reason are shortened."""
    managed = state.labels.get(lb.MANAGED, "")
    if managed.strip().lower() != "true":
        return f"refused: not a managed Deployment ({lb.MANAGED}={bounds.short(managed)}); nothing written"
    carried = state.labels.get(lb.NAME, "").strip()
    if carried != server_name:
        return (f"refused: the Deployment is server {bounds.short(carried)} ({lb.NAME}), not "
                f"{bounds.short(server_name)}; nothing written")
    if allocation is None or allocation.is_empty:
        return ""
    for what, value, bound in (("replicas", allocation.num_replicas, bounds.REPLICAS),
                               ("batch size", allocation.max_batch, bounds.BATCH),
                               ("queue size", allocation.max_queue, bounds.QUEUE)):
        problem = bound.problem(value)
        if problem:
            return f"refused: allocation {what} {problem} (docs/model.md s1); nothing written"
    if not lb.valid_label_value(allocation.accelerator):
        return (f"refused: accelerator {bounds.short(allocation.accelerator)} is not a valid label value "
                f"(at most 63 characters: letters, digits, - _ .); nothing written")
    return ""


def refused(server_name: str, ref: KubeRef, state: DeploymentState | None, reason: str) -> Change:
    """The change of a refused Deployment: skipped with ``reason``, nothing written."""
    replicas = state.replicas if state is not None else 0
    return Change(server_name, ref, ActuationOutcome.SKIPPED, reason, replicas, replicas,
                  resource_version=state.resource_version if state is not None else "")


def _skip(server_name: str, ref: KubeRef, state: DeploymentState, reason: str,
          allocation: Allocation | None = None, desired: int | None = None) -> Change:
    return Change(server_name, ref, ActuationOutcome.SKIPPED, reason, state.replicas, state.replicas,
                  desired_replicas=desired, hold_replicas=desired,
                  accelerator=allocation.accelerator if allocation else "",
                  resource_version=state.resource_version)


def plan_deployment(server_name: str, ref: KubeRef, state: DeploymentState | None, allocation: Allocation | None,
                    server: Server | None, settings: PlanSettings, hold_at: int = 0,
                    load_measured: bool = True, ready_replicas: int | None = None) -> Change:
    """The change for one Deployment of server ``server_name``; ``state`` None means the Deployment is gone;
    ``hold_at`` is the stabilization window's highest count (0 = none; the caller records the change's
    ``hold_replicas`` there); ``load_measured`` False holds any scale-down, and so does a rising load forecast
    (the server's observed forecast_rising: a replica removed now, Ready or starting, is one the coming load
    needs); ``ready_replicas`` (when known) names the replicas still starting in the reason.

    Outcome: SKIPPED (vanished, no allocation, owned by another autoscaler), UNCHANGED (already as allocated)
    or CHANGED (replicas, labels or pod template to write); the reason says why, in words.
    """
    if state is None:
        return Change(server_name, ref, ActuationOutcome.SKIPPED, "deployment not found (deleted?)")
    if allocation is None or allocation.is_empty:
        return _skip(server_name, ref, state, "server absent from the solution: replicas kept")
    cap, _ = lb.max_replicas_of(state.labels, settings.max_replicas)
    minimum = min_replicas(server, state)
    desired, target, notes = target_replicas(allocation.num_replicas, minimum, state.replicas,
                                             settings.max_replica_change, hold_at, cap)
    if state.owner:
        return _skip(server_name, ref, state, f"replicas owned by {state.owner}", allocation, desired)
    if target < state.replicas and not load_measured:
        notes.append(f"scale-down to {target} held: load not measured (from the load labels)")
        target = state.replicas
    if target < state.replicas and _rising(server):
        starting = f", {state.replicas - ready_replicas} replicas starting" if (
            ready_replicas is not None and ready_replicas < state.replicas) else ""
        notes.append(f"scale-down to {target} held: the load forecast rises{starting}")
        target = state.replicas
    hold = min(max(point_replicas(allocation.num_replicas, server), replica_floor(minimum)), desired)
    batch = bounded_batch(allocation.max_batch, pod_max_num_seqs(state.containers), notes)
    labels = _label_patch(allocation, batch, state.labels, target != state.replicas)
    selector = node_selector_patch(allocation.accelerator, state.node_selector, settings.accelerator_node_labels)
    container = _container_patch(state.containers, batch) if settings.set_max_num_seqs else None
    notes_of_routing = routing_patch(ref, state, allocation, server)
    change = Change(server_name, ref, ActuationOutcome.UNCHANGED, "", state.replicas, target, desired,
                    allocation.accelerator, labels, selector, container, state.resource_version, notes_of_routing,
                    hold_replicas=hold)
    if change.scales:
        notes.insert(0, f"replicas {state.replicas} -> {target}")
    if labels:
        notes.append("labels " + ", ".join(key.rsplit(".", 1)[-1] for key in labels))
    if selector:
        notes.append("nodeSelector")
    if container:
        notes.append(f"{MAX_NUM_SEQS} {batch} in container {container.name}")
    if notes_of_routing:
        notes.append("routing weights")
    outcome = ActuationOutcome.CHANGED if change.scales or change.patches else ActuationOutcome.UNCHANGED
    return replace(change, outcome=outcome, reason="; ".join(notes))


def routing_patch(ref: KubeRef, state: DeploymentState, allocation: Allocation,
                  server: Server | None) -> dict[str, str]:
    """A pool Deployment's routing annotation (inferno.routing/weights, services/core/routing.py) for its
    allocation when it differs from the one it has: each class's rate on this Deployment, the per-replica
    rate times the allocated replicas, in the server's class order (priority = position); {} for any other
    server or allocation."""
    pool = state.labels.get(routing.POOL_LABEL)
    if not pool or server is None or not server.pool_classes or len(allocation.class_rpm) != len(server.pool_classes):
        return {}
    rates = [rate * allocation.num_replicas for rate in allocation.class_rpm]
    table = routing.table_from_answer(pool, [c.name for c in server.pool_classes], {ref.name: rates})
    note = routing.annotation_for(table, ref.name)
    return {} if state.annotations.get(routing.ANNOTATION) == note else {routing.ANNOTATION: note}


def _rising(server: Server | None) -> bool:
    observed = server.observed if server is not None else None
    return observed is not None and observed.forecast_rising


def point_replicas(allocated: int, server: Server | None) -> int:
    """The replicas for the point forecast, from ``allocated``, the optimizer's count for the server's load
    (req/min: the rate the collector sized for, services/collector/forecast.py sizing_rate, i.e. the upper
    bound when the forecast rises, else the current rate, plus any backlog rate): ``ceil(allocated x point
    load / load)``, the point load replacing the sized rate by the point forecast, or by the current rate when
    the point is lower (a falling forecast does not remove capacity the current load needs); so at most
    ``allocated``, and ``allocated`` whenever the forecast does not rise. The per-replica rate the optimizer
    found for the accelerator and batch it chose is kept: this is its count for the point load, rounded up.
    Without a forecast (no ``forecast_method``) or a load, ``allocated``. docs/contract.md s9."""
    observed = server.observed if server is not None else None
    if (allocated <= 0 or observed is None or not observed.forecast_method or observed.forecast_rpm is None
            or observed.measured_rate_rpm is None):
        return allocated
    load = server.load.arrival_rate_rpm
    current = observed.measured_rate_rpm
    sized = forecast_sizing_rpm(current, observed.forecast_upper_rpm, observed.forecast_rising)
    if load <= 0:
        return allocated
    point_load = load - max(sized - max(observed.forecast_rpm, current), 0.0)
    return min(max(math.ceil(allocated * max(point_load, 0.0) / load - 1e-9), 0), allocated)


def plan(managed: Iterable[ManagedServer], states: Mapping[KubeRef, DeploymentState | None],
         allocations: Mapping[str, Allocation], settings: PlanSettings) -> list[Change]:
    """Changes for every managed server's Deployment, sorted by (namespace, Deployment, server).

    ``states`` maps each Deployment ref to what was read (None or absent = Deployment gone); ``allocations``
    are keyed by server name.
    """
    return [plan_deployment(r.name, r.ref, states.get(r.ref), allocations.get(r.name), r.server, settings,
                            load_measured=r.load_measured, ready_replicas=r.ready_replicas)
            for r in sorted(managed, key=lambda r: sort_key(r.name, r.ref))]
