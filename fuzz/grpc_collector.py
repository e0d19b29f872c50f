"""Hostile labels on the emulated cluster, through a real CollectorService on 127.0.0.1 and on to the solver.

Each case rewrites the labels of one or two managed Deployments with hostile values a real API server would
accept (valid label values: "9999999999", "1e308", "0.5", "-1", "NaN", 63 nines, a name another Deployment
carries, ...), sometimes injects API faults (500, slow answers), calls Collect, then sizes what was collected
as the controller would (build_system + solve). INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED from Collect is a
finding; so is a crash of the solver; an untouched Deployment missing from the answer ("one bad Deployment
stopped another"), a server with figures outside the bounds, or an allocation above the replica bound is
absurd.
"""

from __future__ import annotations

import math
import random
import time

import grpc

from emulator.kubefaults import Fault
from fuzz.cluster import NAMESPACE, SERVERS, Cluster, emulated_cluster, managed_labels
from fuzz.datafiles import SAMPLE
from fuzz.figures import Figures
from fuzz.grpc_optimizer import FINDINGS
from fuzz.serving import served
from proto import collector_pb2, collector_pb2_grpc
from services.collector.collect import Collector
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.collector.sources import KubeSource
from services.controller.cycle import build_system
from services.core import bounds
from services.core import labels as lb
from services.core.datafiles import load_system_dir
from services.core.errors import InfernoError
from services.core.model import LoadSource
from services.optimizer.solver import solve
from services.runtime import convert

LABEL_VALUES = ("9999999999", "1000000000", "1e308", "1e-320", "0.5", "0", "-1", "NaN", "Infinity", "inf", "2.0",
                "9" * 63, "", "true", "yes", "x", "a.b-c_d", "4097", "10001", "2147483647", "0.999")
KEYS = (lb.MIN_REPLICAS, lb.MAX_REPLICAS, lb.MAX_BATCH, lb.MAX_QUEUE, lb.LOAD_RPM, lb.LOAD_IN_TOKENS,
        lb.LOAD_OUT_TOKENS, lb.LOAD_NUM_TOKENS, lb.KEEP_ACCELERATOR, lb.ACCELERATOR, lb.CLASS, lb.MODEL, lb.NAME,
        lb.MANAGED)


class NoMetrics:
    """A metrics source with nothing: the load labels stand in."""

    source = LoadSource.PROMETHEUS

    def read(self, deployments):
        return {}, []


def _relabel(cluster: Cluster, rng: random.Random) -> tuple[set[str], list[str]]:
    """Reset every Deployment's labels, then spoil one or two; returns (spoiled names, what was done)."""
    for name, model, service_class in SERVERS:
        _set_labels(cluster, name, managed_labels(name, model, service_class))
    spoiled, done = set(), []
    for _ in range(rng.randint(1, 2)):
        name, model, service_class = rng.choice(SERVERS)
        labels = dict(cluster.store.get("apps/v1", "deployments", NAMESPACE, name)["metadata"]["labels"])
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(KEYS)
            value = rng.choice((*LABEL_VALUES, *(s[0] for s in SERVERS))) if key == lb.NAME else rng.choice(
                LABEL_VALUES)
            labels[key] = value
            done.append(f"{name}: {key}={bounds.short(value, 20)}")
        _set_labels(cluster, name, labels)
        spoiled.add(name)
        if labels.get(lb.NAME) in {s[0] for s in SERVERS}:
            spoiled.add(labels[lb.NAME])  # a name collision spoils the other Deployment too
    return spoiled, done


def _set_labels(cluster: Cluster, name: str, labels: dict[str, str]) -> None:
    def change(current: dict) -> dict:
        current["metadata"]["labels"] = dict(labels)
        return current
    cluster.store.write("apps/v1", "deployments", NAMESPACE, name, change)


def _check(collection, spoiled: set[str], faulted: bool) -> str:
    names = {r.name for r in collection.managed}
    dropped = sorted(s[0] for s in SERVERS if s[0] not in spoiled and s[0] not in names)
    if dropped and not faulted:
        return f"untouched Deployments missing from the answer: {dropped}"
    for r in collection.managed:
        s = r.server
        if s.min_replicas > bounds.MAX_REPLICAS or s.max_batch_size > bounds.MAX_BATCH_SIZE or bounds.RATE_RPM.problem(
                s.load.arrival_rate_rpm) or bounds.TOKENS.problem(s.load.avg_out_tokens):
            return f"{r.name}: min {s.min_replicas}, batch {s.max_batch_size}, load {s.load}"
    return ""


def run(seed: int, cases: int, budget_s: float = math.inf) -> Figures:
    """``cases`` hostile relabellings from ``seed`` (stopping early after ``budget_s`` seconds)."""
    rng = random.Random(seed)
    static = load_system_dir(str(SAMPLE), require_servers=False).system
    figures = Figures("collector gRPC (labels)")
    started = time.monotonic()
    with emulated_cluster(seed) as cluster:
        collector = Collector(KubeSource(cluster.api, timeout_s=2.0), NoMetrics(), str(SAMPLE), max_replicas=100)
        with served(register(CollectorServicer(collector)), SERVICE_NAME,
                    collector_pb2_grpc.CollectorServiceStub) as stub:
            for case in range(cases):
                if time.monotonic() - started > budget_s:
                    break
                cluster.faults.clear()
                faulted = rng.random() < 0.15
                if faulted:
                    cluster.faults.add(Fault(verb="list", status=rng.choice((500, 503)), random_rate=0.5))
                spoiled, done = _relabel(cluster, rng)
                figures.inputs += 1
                what = f"seed {seed} case {case}: {'; '.join(done)}{' (API faults)' if faulted else ''}"
                _one(stub, static, spoiled, faulted, what, figures)
    figures.elapsed_s = time.monotonic() - started
    return figures


def _one(stub, static, spoiled: set[str], faulted: bool, what: str, figures: Figures) -> None:
    try:
        reply = stub.Collect(collector_pb2.CollectRequest(), timeout=30)
    except grpc.RpcError as err:
        if err.code() in FINDINGS - {grpc.StatusCode.UNAVAILABLE}:  # UNAVAILABLE: the API answered 5xx
            figures.found_rpc_error(what, err)
        return
    try:
        collection = convert.collection_from_proto(reply)
        absurd = _check(collection, spoiled, faulted)
        if collection.managed:
            result = solve(build_system(static, static.capacity, collection))
            for name, alloc in result.solution.allocations.items():
                if alloc.num_replicas > bounds.MAX_REPLICAS or not math.isfinite(alloc.cost_per_hour):
                    absurd = absurd or f"{name}: {alloc.num_replicas} replicas, cost {alloc.cost_per_hour}"
    except InfernoError:
        return
    except Exception as err:  # noqa: BLE001 - what the campaign is looking for
        figures.found("crashes", f"{what}: {type(err).__name__}: {str(err)[:200]}")
        return
    if absurd:
        figures.found("absurd", f"{what}: {absurd}")
