"""The actuator's Kubernetes I/O: read each Deployment, let the plan decide, write what it decided.

Per Deployment: read it (and, once per namespace and call, the HPAs and KEDA ScaledObjects there), verify the
request against what was read (plan.refusal: the managed label, the server name, bounds, valid label values;
a Deployment named twice in one call is refused too: nothing is written to a refused Deployment), plan, then
write the replicas first (scale subresource) and the labels / pod template after (strategic-merge patch), each
write carrying the resourceVersion read, so a concurrent writer makes it fail with 409. Replicas first: if the
label patch then fails, the labels still describe the replicas' old allocation, never one the replicas did
not reach, and the result says "replicas written, labels not" (FAILED). A 409 is retried on a fresh read and
a fresh plan (at most ``attempts`` tries; the plan then sees the replicas already moved). A vanished
Deployment (404) is reported as skipped; any other error fails that Deployment only. The API calls used are
listed in services/actuator/rbac.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services.actuator.events import EventRecorder
from services.actuator.plan import (
    NOT_ATTEMPTED,
    Autoscaler,
    Change,
    Container,
    DeploymentState,
    PlanSettings,
    owner_of,
    plan_deployment,
    refusal,
    refused,
    sort_key,
)
from services.actuator.stabilize import ScaleDownWindow
from services.core import bounds
from services.core.model import ActuationOutcome, Allocation, KubeRef, ManagedServer, Notice
from services.runtime.logs import get_logger

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
KEDA = ("keda.sh", "v1alpha1", "scaledobjects")

_log = get_logger("actuator")


def _body(response: Any) -> dict[str, Any]:
    return json.loads(response.data or b"{}")


def state_from_deployment(obj: Mapping[str, Any], owner: str) -> DeploymentState:
    """A Deployment as JSON (camelCase, as the API serves it) -> DeploymentState; absent replicas count as 1."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    containers = tuple(Container(c.get("name", ""), tuple(c.get("args") or ())) for c in pod.get("containers") or ())
    return DeploymentState(replicas=int(spec.get("replicas", 1)), resource_version=meta.get("resourceVersion", ""),
                           labels=meta.get("labels") or {}, node_selector=pod.get("nodeSelector") or {},
                           containers=containers, owner=owner, annotations=meta.get("annotations") or {})


def patch_body(change: Change, resource_version: str) -> dict[str, Any]:
    """The strategic-merge patch for a change's labels, annotations and pod template, preconditioned on
    resource_version."""
    body: dict[str, Any] = {"metadata": {"resourceVersion": resource_version}}
    if change.labels:
        body["metadata"]["labels"] = dict(change.labels)
    if change.annotations:
        body["metadata"]["annotations"] = dict(change.annotations)
    pod: dict[str, Any] = {}
    if change.node_selector:
        pod["nodeSelector"] = dict(change.node_selector)
    if change.container is not None:
        pod["containers"] = [{"name": change.container.name, "args": list(change.container.args)}]
    if pod:
        body["spec"] = {"template": {"spec": pod}}
    return body


class KubeActuator:
    """Applies allocations to Deployments through the official client; one instance serves many calls."""

    def __init__(self, api_client: client.ApiClient, settings: PlanSettings, *, attempts: int = 3,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._window = ScaleDownWindow(settings.scale_down_stabilization_s)
        self._clock = clock
        self._events = EventRecorder(api_client, timeout_s=timeout_s)
        self._hpas = client.AutoscalingV2Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._settings = settings
        self._attempts = max(1, attempts)
        self._timeout_s = timeout_s

    def actuate(self, managed: Iterable[ManagedServer], allocations: Mapping[str, Allocation], dry_run: bool,
                proceed: Callable[[], bool] = lambda: True, notices: Iterable[Notice] = ()) -> list[Change]:
        """Make each managed server's Deployment match its allocation (keyed by server name); never raises.

        Returns one Change per target, sorted by (namespace, Deployment, server), whose outcome says what was
        done (in a dry run: what would have been done; nothing is written). ``proceed`` is asked before each
        Deployment (the gRPC caller still waiting); once it says no, the rest are failed unread and unwritten.
        ``notices`` are Events the caller wants on servers' Deployments (written after the changes; not in a
        dry run; a notice for a server not managed here is dropped).
        """
        scalers: dict[str, list[Autoscaler]] = {}
        changes = []
        managed = list(managed)
        records = sorted(managed, key=lambda r: sort_key(r.name, r.ref))
        repeated = _repeated(records)
        for record in records:
            if record.ref in repeated or record.name in repeated:
                reason = repeated.get(record.ref) or repeated[record.name]
                _log.warning("deployment_refused", namespace=record.ref.namespace, deployment=record.ref.name,
                             reason=reason)
                changes.append(refused(record.name, record.ref, None, reason))
                continue
            if not proceed():
                changes.append(Change(record.name, record.ref, ActuationOutcome.FAILED, NOT_ATTEMPTED))
                continue
            changes.append(self._actuate_one(record, allocations.get(record.name), dry_run, scalers))
        refs = {record.name: record.ref for record in managed}
        for notice in notices:
            if not dry_run and notice.server_name in refs:
                self._events.emit(refs[notice.server_name], notice.type, notice.reason, notice.message)
        return changes

    def _actuate_one(self, record: ManagedServer, allocation: Allocation | None, dry_run: bool,
                     scalers: dict[str, list[Autoscaler]]) -> Change:
        name, ref, server = record.name, record.ref, record.server
        change = Change(name, ref, ActuationOutcome.FAILED)
        key, now_s = (ref.namespace, ref.name), self._clock()
        for attempt in range(1, self._attempts + 1):
            try:
                state = self._read(ref, scalers)
                why = refusal(name, state, allocation)
                if why:
                    _log.warning("deployment_refused", namespace=ref.namespace, deployment=ref.name, reason=why)
                    return refused(name, ref, state, why)
                hold_at = self._window.highest(key, now_s, state.replicas, remember=not dry_run)
                change = plan_deployment(name, ref, state, allocation, server, self._settings, hold_at,
                                         record.load_measured, record.ready_replicas)
                if change.hold_replicas is not None and not dry_run:  # a dry run leaves no trace
                    self._window.record(key, change.hold_replicas, now_s)
                if not dry_run and change.outcome is ActuationOutcome.CHANGED:
                    self._write(ref, change)
                if not dry_run:
                    self._events.record(change)
                return change
            except PartialWrite as partial:
                err = partial.cause
                if isinstance(err, ApiException) and err.status == 409 and attempt < self._attempts:
                    _log.info("deployment_conflicted", namespace=ref.namespace, deployment=ref.name, attempt=attempt)
                    continue
                reason = (f"replicas {change.replicas_from} -> {change.replicas_to} written, labels / pod template "
                          f"not: {_describe(err)}")
                _log.warning("deployment_failed", namespace=ref.namespace, deployment=ref.name, reason=reason)
                return replace(change, outcome=ActuationOutcome.FAILED, reason=reason)
            except ApiException as err:
                if err.status == 404:
                    if not dry_run:
                        self._window.forget(key)
                    return plan_deployment(name, ref, None, allocation, server, self._settings)
                if err.status == 409 and attempt < self._attempts:
                    _log.info("deployment_conflicted", namespace=ref.namespace, deployment=ref.name, attempt=attempt)
                    continue
                reason = _describe(err)
                if err.status == 409:
                    reason = f"conflict persisted after {attempt} attempts"
            except Exception as err:  # noqa: BLE001 - one failing Deployment never stops the others
                reason = _describe(err)  # unexpected: logged with its traceback
                _log.warning("deployment_failed", namespace=ref.namespace, deployment=ref.name, reason=reason,
                             exc_info=True)
                return change.failed(reason)
            _log.warning("deployment_failed", namespace=ref.namespace, deployment=ref.name, reason=reason)
            return change.failed(reason)
        return change.failed("no attempt made")

    def _read(self, ref: KubeRef, scalers: dict[str, list[Autoscaler]]) -> DeploymentState:
        response = self._apps.read_namespaced_deployment(ref.name, ref.namespace, _preload_content=False,
                                                         _request_timeout=self._timeout_s)
        if ref.namespace not in scalers:
            scalers[ref.namespace] = self.autoscalers(ref.namespace)
        return state_from_deployment(_body(response), owner_of(ref.name, scalers[ref.namespace]))

    def autoscalers(self, namespace: str) -> list[Autoscaler]:
        """The HPAs (autoscaling/v2) and KEDA ScaledObjects of ``namespace`` (none when KEDA's CRD is absent).

        Raises ApiException when the HPAs cannot be listed.
        """
        hpas = _body(self._hpas.list_namespaced_horizontal_pod_autoscaler(
            namespace, _preload_content=False, _request_timeout=self._timeout_s))
        found = [_autoscaler("HorizontalPodAutoscaler", item) for item in hpas.get("items") or ()]
        try:
            keda = self._custom.list_namespaced_custom_object(*KEDA[:2], namespace, KEDA[2],
                                                              _request_timeout=self._timeout_s)
        except ApiException as err:
            if err.status != 404:
                raise
            keda = {}
        return found + [_autoscaler("ScaledObject", item) for item in keda.get("items") or ()]

    def _write(self, ref: KubeRef, change: Change) -> None:
        """Replicas first (scale subresource), then labels / pod template (one patch); raises PartialWrite when
        the replicas were written and the patch failed."""
        version = change.resource_version
        if change.scales:
            body = {"metadata": {"resourceVersion": version}, "spec": {"replicas": change.replicas_to}}
            response = self._apps.patch_namespaced_deployment_scale(
                ref.name, ref.namespace, body, _content_type=MERGE, _preload_content=False,
                _request_timeout=self._timeout_s)
            version = _body(response).get("metadata", {}).get("resourceVersion", version)
            _log.info("deployment_scaled", namespace=ref.namespace, deployment=ref.name,
                      replicas_from=change.replicas_from, replicas_to=change.replicas_to)
        if change.patches:
            try:
                self._apps.patch_namespaced_deployment(
                    ref.name, ref.namespace, patch_body(change, version), _content_type=STRATEGIC_MERGE,
                    _preload_content=False, _request_timeout=self._timeout_s)
            except Exception as err:
                if change.scales:
                    raise PartialWrite(err) from err
                raise
            _log.info("deployment_patched", namespace=ref.namespace, deployment=ref.name, labels=dict(change.labels),
                      restarts_pods=change.restarts_pods)


class PartialWrite(Exception):
    """The replicas were written, the label / pod-template patch after them failed (``cause``)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _describe(err: Exception) -> str:
    """An API error in a few words (status and reason; never the response body or headers)."""
    if isinstance(err, ApiException):
        return f"Kubernetes API answered {err.status} {err.reason or ''}".strip()
    return f"{type(err).__name__}: {bounds.short(str(err), 200)}"


def _repeated(records: list[ManagedServer]) -> dict[Any, str]:
    """Deployment refs and server names named more than once in one call -> the refusal reason."""
    refs = Counter(r.ref for r in records)
    names = Counter(r.name for r in records)
    out: dict[Any, str] = {}
    for ref, count in refs.items():
        if count > 1:
            out[ref] = (f"refused: Deployment {ref.namespace}/{ref.name} is named {count} times in one call; "
                        f"nothing written")
    for name, count in names.items():
        if count > 1:
            out[name] = f"refused: server {bounds.short(name)} is named {count} times in one call; nothing written"
    return out


def _autoscaler(kind: str, item: Mapping[str, Any]) -> Autoscaler:
    target = (item.get("spec") or {}).get("scaleTargetRef") or {}
    return Autoscaler(kind, (item.get("metadata") or {}).get("name", ""), target.get("kind", ""),
                      target.get("name", ""))
