"""Applying a pool's answer (docs/contract.md s10): scale each Deployment of the pool and publish the routing
weights on it (annotation ``inferno.routing/weights``), replicas first as for any server (s5).

``python -m services.actuator.pools --namespace NS --pool P --answer FILE [--update I] [--deployment TYPE=NAME]
[--dry-run] [--kubeconfig FILE]`` applies one update of ``python -m services.optimizer qos --json`` (the last by
default): instance type k of the answer is the Deployment of the same name (or the one --deployment maps it to);
it gets n_k replicas and, for each class, the rate the answer routes to it. Uses the actuator's permissions only (patch
deployments and deployments/scale).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from kubernetes import client

from services.actuator.poolplan import PoolPlan, plan_from_answer
from services.core import routing
from services.core.errors import InfernoError, InvalidInputError

MERGE = "application/merge-patch+json"
__all__ = ["PoolActuator", "PoolPlan", "main", "plan_from_answer"]

class PoolActuator:
    """Writes a PoolPlan through the official client: per Deployment the scale subresource, then the routing
    annotation (a merge patch of its metadata)."""

    def __init__(self, api_client: client.ApiClient, timeout_s: float = 10.0) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._timeout_s = timeout_s

    def apply(self, plan: PoolPlan, dry_run: bool = False) -> list[str]:
        """Apply ``plan``; returns one line per Deployment saying what was (or, dry run, would be) written.
        Every Deployment is read first, so a missing one, or one not labelled ``inferno.server.pool`` with the
        pool's name, or whose ``inferno.server.classes`` differ from the answer's, fails (InvalidInputError)
        before anything is written."""
        current = {d: self._apps.read_namespaced_deployment(d, plan.namespace, _request_timeout=self._timeout_s)
                   for d in sorted(plan.replicas)}
        names = [c.name for c in plan.table.classes]
        for deployment, obj in current.items():
            labels = obj.metadata.labels or {}
            if labels.get(routing.POOL_LABEL) != plan.table.pool:
                raise InvalidInputError(f"deployment {plan.namespace}/{deployment}: label {routing.POOL_LABEL} is "
                                        f"{labels.get(routing.POOL_LABEL)!r}, not the pool {plan.table.pool!r}")
            declared = labels.get(routing.CLASSES_LABEL)
            if declared is not None and routing.parse_classes(declared) != names:
                raise InvalidInputError(f"deployment {plan.namespace}/{deployment}: label {routing.CLASSES_LABEL} "
                                        f"{declared!r} does not list the answer's classes {names} in that order")
        lines = []
        for deployment, obj in current.items():
            want = plan.replicas[deployment]
            note = routing.annotation_for(plan.table, deployment)
            have = (obj.spec.replicas, (obj.metadata.annotations or {}).get(routing.ANNOTATION))
            verb = "would set" if dry_run else "set"
            lines.append(f"{plan.namespace}/{deployment}: {verb} replicas {have[0]} -> {want}; weights "
                         + ", ".join(f"{c.name} {c.rpm.get(deployment, 0.0):g} RPM (priority {c.priority})"
                                     for c in plan.table.classes))
            if dry_run:
                continue
            if have[0] != want:
                self._apps.patch_namespaced_deployment_scale(deployment, plan.namespace, {"spec": {"replicas": want}},
                                                             _content_type=MERGE, _request_timeout=self._timeout_s)
            if have[1] != note:
                self._apps.patch_namespaced_deployment(
                    deployment, plan.namespace, {"metadata": {"annotations": {routing.ANNOTATION: note}}},
                    _content_type=MERGE, _request_timeout=self._timeout_s)
        return lines


def _mapping(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"--deployment: expected TYPE=NAME, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring); exit 1 with the message on a bad answer or an API error."""
    parser = argparse.ArgumentParser(prog="python -m services.actuator.pools", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--answer", required=True, help="the JSON `qos --json` printed")
    parser.add_argument("--update", type=int, default=-1, help="which update of the answer (default: the last)")
    parser.add_argument("--deployment", action="append", default=[], metavar="TYPE=NAME")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else KUBECONFIG or ~/.kube/config)")
    args = parser.parse_args(argv)
    from services.runtime.kube import load_api_client
    from services.runtime.startup import kube_client

    try:
        with open(args.answer, encoding="utf-8") as handle:
            answers = json.load(handle)
        if not isinstance(answers, list) or not answers:
            raise InvalidInputError("--answer: expected the list `qos --json` prints")
        try:
            answer = answers[args.update]
        except IndexError:
            raise InvalidInputError(f"--update {args.update}: the answer has {len(answers)} updates") from None
        plan = plan_from_answer(args.namespace, args.pool, answer, _mapping(args.deployment))
        api = load_api_client(args.kubeconfig) if args.kubeconfig else kube_client()
        try:
            for line in PoolActuator(api).apply(plan, args.dry_run):
                print(line)
        finally:
            api.close()
    except (InfernoError, OSError, json.JSONDecodeError, client.ApiException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
