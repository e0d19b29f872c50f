"""End to end: a pool in the control cycle (docs/contract.md s10). One Deployment labelled as a pool of two
classes (Premium, Bronze) runs vLLM's priority scheduling behind the emulator's router; the four services run as
processes against the emulated cluster and Prometheus. One /invoke cycle reads each class's rate from the
router's counters, sizes the pool with the priority ILP and scales the Deployment and writes the routing
weights the router then follows."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace

import pytest

from emulator.cluster import Cluster
from harness.scenario import ACCELERATOR, NAMESPACE, Scenario, static_system
from harness.services import ServiceProcesses
from services.core import datafiles, routing

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("prometheus") is None,
                                                  reason="the prometheus binary is not installed")]

WINDOW_S = 45
RATES_RPS = {"Premium": 0.6, "Bronze": 1.8}
DEPLOYMENT = "granite-pool"


def _config(system) -> dict:
    perf = system.perf("granite_13b", ACCELERATOR)
    labels = {"in_tokens": 128, "out_tokens": 64}
    return {
        "startup_delay_s": 2.0, "grace_s": 5, "scrape_interval_s": 1, "namespaces": [NAMESPACE],
        "deployments": [{"name": DEPLOYMENT, "namespace": NAMESPACE, "server": "granite-pool", "replicas": 1,
                         "model": "granite_13b", "class": "Premium", "accelerator": ACCELERATOR, "maxbatchsize": 2,
                         "max_num_seqs": 2, "scheduling_policy": "priority",
                         "perf": {"alpha": perf.perf.alpha_ms, "beta": perf.perf.beta_ms, "gamma": perf.perf.gamma_ms},
                         "load": {"rpm": 60, "intokens": 128, "outtokens": 64}}],
        "pools": [{"name": "granite", "namespace": NAMESPACE, "deployments": [DEPLOYMENT],
                   "classes": ["Premium", "Bronze"]}],
        "loads": [{"pool": "granite", "namespace": NAMESPACE, "class": name, **labels,
                   "phases": [{"rate_rps": rate, "duration_s": 600}]} for name, rate in RATES_RPS.items()],
    }


def test_one_cycle_sizes_the_pool_from_the_routers_per_class_rates_and_writes_replicas_and_weights(tmp_path):
    system = static_system(Scenario())
    data = str(tmp_path / "data")
    datafiles.write_system_dir(data, replace(system, servers=()))
    cluster = Cluster(_config(system), workdir=str(tmp_path / "cluster"))
    os.makedirs(cluster.workdir, exist_ok=True)
    services = None
    try:
        cluster.start(wait_ready_s=60)
        env = {"KUBECONFIG": cluster.kubeconfig_path, "INFERNO_DATA_PATH": data, "WATCH_NAMESPACE": NAMESPACE,
               "INFERNO_PROMETHEUS_URL": cluster.prometheus_url, "INFERNO_PROMETHEUS_WINDOW": f"{WINDOW_S}s",
               "INFERNO_CYCLE_LOG": str(tmp_path / "cycles.jsonl"), "INFERNO_GRPC_DEADLINE": "30",
               "INFERNO_SHUTDOWN_GRACE": "2", "INFERNO_SCALE_DOWN_STABILIZATION": "0"}
        services = ServiceProcesses(str(tmp_path), env).start(90)
        cluster.start_load(seed=3)
        time.sleep(WINDOW_S + 10)

        status, record = services.invoke()

        assert status == 200 and record["outcome"] == "applied", record
        obj = cluster.store.get("apps/v1", "deployments", NAMESPACE, DEPLOYMENT)
        table = routing.parse(obj["metadata"]["annotations"][routing.ANNOTATION])
        assert table.pool == "granite" and [(c.name, c.priority) for c in table.classes] == [("Premium", 0),
                                                                                          ("Bronze", 1)]
        premium, bronze = (table.of(name).rpm[DEPLOYMENT] for name in ("Premium", "Bronze"))
        # the router's counts (36 and 108 RPM offered; Poisson counts over the window), not an even split of the
        # Deployment's rate (which would make them equal)
        assert premium == pytest.approx(36, rel=0.5) and bronze == pytest.approx(108, rel=0.4)
        assert bronze > 1.5 * premium
        (row,) = [r for r in record["rows"] if r["server"] == "granite-pool"]
        assert row["action"] == "changed" and row["accelerator"] == ACCELERATOR
        replicas = obj["spec"]["replicas"]
        assert replicas == row["replicas_to"] >= 2  # one replica of batch 2 carries about 75 RPM
        # the row's per-class figures: the planned rate per replica is the weight over the replicas
        classes = row["pool_classes"]
        assert [c["class"] for c in classes] == ["Premium", "Bronze"]
        assert [c["rate_per_replica_rpm"] * replicas for c in classes] == pytest.approx([premium, bronze], rel=1e-3)
        assert all(0 < c["predicted_latency_s"] <= c["latency_bound_s"] for c in classes)
        assert cluster.reconciler.wait_ready(NAMESPACE, DEPLOYMENT, replicas, 30)
        # the router follows the weights now on the Deployment (all of both classes to it)
        router = cluster.routers[NAMESPACE, "granite"]
        assert router.table() == table
    finally:
        if services is not None:
            services.stop()
        cluster.stop()
