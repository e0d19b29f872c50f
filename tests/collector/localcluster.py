"""The local cluster for the collector's integration tests: emulated API + reconciler + a real Prometheus.

Built from the emulator's pieces; a managed Deployment whose replicas are emulated vLLM servers, scraped
by Prometheus every 0.5 s through the reconciler's file_sd targets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.core import labels as lb

NS = "llm"
DEPLOYMENT = "granite"
LABELS = {lb.MANAGED: "true", lb.NAME: "premium-granite", lb.MODEL: "granite", lb.CLASS: "Premium",
          lb.ACCELERATOR: "A100", lb.MAX_BATCH: "32", lb.LOAD_RPM: "7", lb.LOAD_IN_TOKENS: "11",
          lb.LOAD_OUT_TOKENS: "13"}
ENGINE = {"inferno.emulator/alpha": "8", "inferno.emulator/beta": "0.2", "inferno.emulator/gamma": "0.0005",
          "inferno.emulator/startup-delay-seconds": "0.2"}


def managed_deployment(replicas: int, labels: dict | None = None, name: str = DEPLOYMENT) -> dict:
    """A managed vLLM Deployment the reconciler runs as emulated replicas (perfParms in annotations)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS if labels is None else labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}, "annotations": dict(ENGINE)},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                                         "args": ["--served-model-name", "granite"]}]}}}}


@dataclass
class LocalCluster:
    """The running pieces; ``stop()`` ends them in reverse order."""

    store: object
    api_server: object
    reconciler: object
    prometheus: object
    kubeconfig: str

    def stop(self) -> None:
        """Stop reconciler (replicas), Prometheus and the API server."""
        self.reconciler.stop()
        self.prometheus.stop()
        self.api_server.stop()


def start_local_cluster(workdir: str, scrape_interval_s: float = 0.5) -> LocalCluster:
    """Start the emulated API, a Prometheus scraping the reconciler's targets, and the reconciler."""
    from emulator.kubeapi import KubeApiServer, write_kubeconfig
    from emulator.kubestore import KubeStore
    from emulator.prometheus import PrometheusRunner
    from emulator.reconciler import Reconciler

    store = KubeStore()
    api_server = KubeApiServer(store)
    api_server.start()
    kubeconfig = f"{workdir}/kubeconfig"
    write_kubeconfig(kubeconfig, api_server.url)
    prometheus = PrometheusRunner(workdir=f"{workdir}/prometheus", scrape_interval_s=scrape_interval_s,
                                  refresh_interval_s=scrape_interval_s)
    os.makedirs(prometheus.workdir, exist_ok=True)
    prometheus.start()
    reconciler = Reconciler(store, startup_delay_s=0.2, grace_s=1.0, sd_path=prometheus.sd_path).start()
    return LocalCluster(store, api_server, reconciler, prometheus, kubeconfig)
