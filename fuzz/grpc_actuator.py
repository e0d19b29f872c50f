"""Hostile Actuate requests and API faults against a real ActuatorService on 127.0.0.1 and the emulated cluster.

Each case asks the actuator to apply allocations to one to five entries naming the cluster's Deployments, an
unmanaged one, a missing one, or a managed one under another server's name, the same Deployment twice, with
hostile replicas (int32 extremes, 10,001, negative), batch and queue sizes and accelerator names (not valid
label values, 100k characters), while the API answers some requests with 500, 409 or slowly. INTERNAL,
UNKNOWN or RESOURCE_EXHAUSTED is a finding; after every call the cluster is checked: a Deployment above its
maximum replicas (its maxreplicas label, else the setting) or an unmanaged Deployment written to is an absurd
write.
"""

from __future__ import annotations

import math
import random
import time

import grpc

from emulator.kubefaults import Fault
from fuzz.cluster import NAMESPACE, SERVERS, UNMANAGED, Cluster, emulated_cluster
from fuzz.figures import Figures
from fuzz.grpc_optimizer import FINDINGS
from fuzz.serving import served
from proto import actuator_pb2, actuator_pb2_grpc, optimizer_pb2, types_pb2
from services.actuator.kube import KubeActuator
from services.actuator.metrics import ActuatorMetrics
from services.actuator.plan import PlanSettings
from services.actuator.servicer import SERVICE_NAME, ActuatorServicer, register
from services.core import bounds
from services.core import labels as lb

MAX_REPLICAS = 50
"""The campaign's INFERNO_MAX_REPLICAS."""
REPLICAS = (0, 1, 3, 7, 49, 50, 51, 100, 10_000, 10_001, 1_000_000_000, 2**31 - 1, -1, -(2**31))
ACCELERATORS = ("A100", "L4", "", "bad accelerator!", "a" * 64, "x" * 100_000, "-lead", "trail.", "../etc")
TARGETS = (*(s[0] for s in SERVERS), UNMANAGED, "missing")


def _pick(rng: random.Random, sane: tuple, hostile: tuple):
    """A hostile value one time in five, else a sane one (so that requests get past the wire checks and the
    actuator's own verification is exercised)."""
    return rng.choice(hostile) if rng.random() < 0.2 else rng.choice(sane)


def _entry(rng: random.Random, request: actuator_pb2.ActuateRequest) -> str:
    deployment = rng.choice(TARGETS)
    server = deployment if rng.random() < 0.8 else rng.choice(TARGETS)
    managed = request.managed.add(ref=types_pb2.KubeRef(namespace=NAMESPACE, name=deployment),
                                  spec_replicas=rng.choice((0, 2, 2**31 - 1)), load_measured=rng.random() < 0.8)
    managed.server.name = server
    managed.server.min_replicas = _pick(rng, (0, 1, 2), (1000, 2**31 - 1))
    alloc = types_pb2.Allocation(accelerator=_pick(rng, ("A100", "L4"), ACCELERATORS),
                                 num_replicas=_pick(rng, (1, 3, 7, 40), REPLICAS),
                                 max_batch=_pick(rng, (16, 32), (0, 4096, 4097, 2**31 - 1)),
                                 max_queue=_pick(rng, (0, 100), (1_000_001, 2**31 - 1, -5)))
    if server not in {a.server_name for a in request.allocations} or rng.random() < 0.1:  # repeated: refused whole
        request.allocations.append(optimizer_pb2.ServerAllocation(server_name=server, allocation=alloc))
    return f"{server}@{deployment}: {alloc.num_replicas} x {bounds.short(alloc.accelerator, 16)}"


def _faults(cluster: Cluster, rng: random.Random) -> str:
    cluster.faults.clear()
    roll = rng.random()
    if roll < 0.6:
        return ""
    verb, resource = rng.choice((("patch", "deployments"), ("patch", "deployments/scale"), ("get", "deployments"),
                                 ("list", "horizontalpodautoscalers")))
    status = rng.choice((500, 503, 409, 0))
    cluster.faults.add(Fault(verb=verb, resource=resource, status=status, delay_s=0.3 if not status else 0.0,
                             random_rate=0.5))
    return f" (API: {verb} {resource} -> {status or 'slow'})"


def _absurd(cluster: Cluster, unmanaged_version: str) -> str:
    for name, _, _ in SERVERS:
        obj = cluster.store.get("apps/v1", "deployments", NAMESPACE, name)
        cap, _ = lb.max_replicas_of(obj["metadata"]["labels"], MAX_REPLICAS)
        if obj["spec"]["replicas"] > cap:
            return f"{name}: {obj['spec']['replicas']} replicas above its maximum {cap}"
    version = cluster.store.get("apps/v1", "deployments", NAMESPACE, UNMANAGED)["metadata"]["resourceVersion"]
    if version != unmanaged_version:
        return "the unmanaged Deployment was written"
    return ""


def _count(figures: Figures, reply: actuator_pb2.ActuateResponse) -> None:
    figures.counts["calls OK"] = figures.counts.get("calls OK", 0) + 1
    for result in reply.results:
        outcome = actuator_pb2.ActuationResult.Outcome.Name(result.outcome).lower()
        if result.reason.startswith("refused"):
            outcome = "refused"
        key = f"Deployments {outcome}"
        figures.counts[key] = figures.counts.get(key, 0) + 1


def run(seed: int, cases: int, budget_s: float = math.inf) -> Figures:
    """``cases`` hostile Actuate calls from ``seed`` (stopping early after ``budget_s`` seconds)."""
    rng = random.Random(seed)
    figures = Figures("actuator gRPC (+ API faults)")
    started = time.monotonic()
    with emulated_cluster(seed) as cluster:
        settings = PlanSettings(max_replica_change=0, max_replicas=MAX_REPLICAS)
        actuator = KubeActuator(cluster.api, settings, timeout_s=0.2)
        servicer = ActuatorServicer(actuator, ActuatorMetrics())
        unmanaged = cluster.store.get("apps/v1", "deployments", NAMESPACE, UNMANAGED)["metadata"]["resourceVersion"]
        with served(register(servicer), SERVICE_NAME, actuator_pb2_grpc.ActuatorServiceStub) as stub:
            for case in range(cases):
                if time.monotonic() - started > budget_s:
                    break
                request = actuator_pb2.ActuateRequest(dry_run=rng.random() < 0.1)
                entries = [_entry(rng, request) for _ in range(rng.randint(1, 5))]
                faults = _faults(cluster, rng)
                figures.inputs += 1
                what = f"seed {seed} case {case}: {'; '.join(entries)}{faults}"
                try:
                    reply = stub.Actuate(request, timeout=30)
                except grpc.RpcError as err:
                    key = f"calls {err.code().name}"
                    figures.counts[key] = figures.counts.get(key, 0) + 1
                    if err.code() in FINDINGS:
                        figures.found_rpc_error(what, err)
                else:
                    _count(figures, reply)
                absurd = _absurd(cluster, unmanaged)
                if absurd:
                    figures.found("absurd", f"{what}: {absurd}")
    figures.elapsed_s = time.monotonic() - started
    return figures
