"""The whole local cluster from one small YAML/JSON description: API server, replicas, Prometheus, load.

Config keys (all optional but ``deployments``)::

    startup_delay_s: 2        # Pending -> Running delay of every pod
    grace_s: 30               # drain limit of a removed replica
    time_scale: 1.0           # multiplies every engine iteration (perfParms x time_scale)
    prometheus: true          # start Prometheus when the binary exists
    scrape_interval_s: 1
    namespaces: [llm]
    deployments:
      - {name, namespace, replicas, model, class, accelerator, maxbatchsize, maxqueuesize, minreplicas,
         perf: {alpha, beta, gamma}, kv_cache_tokens, startup_delay_s, time_scale,
         load: {rpm, intokens, outtokens}, labels: {...}, annotations: {...}}
    loads:
      - {deployment, namespace, in_tokens, out_tokens, slo_ttft_ms, slo_itl_ms, phases: [...]}  # loadshape.py

Each deployment becomes a managed Deployment with the inferno labels of ARCHITECTURE.md s4 on it and on its
pod template, and the emulator annotations of emulator/podtemplate.py on the template.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import yaml

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubestore import KubeStore
from emulator.loadgen import LoadGenerator, Target
from emulator.loadshape import parse_length, parse_schedule
from emulator.podtemplate import PREFIX
from emulator.prometheus import PrometheusRunner, prometheus_binary
from emulator.reconciler import Reconciler


def load_config(path: str) -> dict:
    """Read a cluster description from YAML or JSON."""
    with open(path) as handle:
        text = handle.read()
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


def deployment_object(spec: dict[str, Any]) -> dict:
    """The managed Deployment for one ``deployments`` entry."""
    name, perf = spec["name"], spec.get("perf") or {}
    labels = {"app": name, "inferno.server.managed": "true", "inferno.server.name": spec.get("server", name),
              "inferno.server.model": spec.get("model", name), "inferno.server.class": spec.get("class", "Free")}
    for key in ("accelerator", "maxbatchsize", "maxqueuesize"):
        if key in spec:
            labels[f"inferno.server.allocation.{key}"] = str(spec[key])
    if "minreplicas" in spec:
        labels["inferno.server.minreplicas"] = str(spec["minreplicas"])
    for key, value in (spec.get("load") or {}).items():
        labels[f"inferno.server.load.{key}"] = str(value)
    labels.update({k: str(v) for k, v in (spec.get("labels") or {}).items()})
    notes = {f"{PREFIX}{k}": str(perf[k]) for k in ("alpha", "beta", "gamma") if k in perf}
    for key, note in (("kv_cache_tokens", "kv-cache-tokens"), ("startup_delay_s", "startup-delay-seconds"),
                      ("time_scale", "time-scale"), ("max_num_seqs", "max-num-seqs")):
        if key in spec:
            notes[PREFIX + note] = str(spec[key])
    notes.update({k: str(v) for k, v in (spec.get("annotations") or {}).items()})
    container = {"name": "vllm", "image": "vllm/vllm-openai:emulated",
                 "args": ["--model", labels["inferno.server.model"]]}
    return {"metadata": {"name": name, "namespace": spec.get("namespace", "default"), "labels": labels},
            "spec": {"replicas": int(spec.get("replicas", 1)), "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels, "annotations": notes},
                                  "spec": {"containers": [container]}}}}


class Cluster:
    """The emulated cluster: start()/stop() or use as a context manager."""

    def __init__(self, config: dict, *, prometheus: bool | None = None, workdir: str | None = None) -> None:
        self.config = config
        want = config.get("prometheus", True) if prometheus is None else prometheus
        self._want_prometheus = bool(want and prometheus_binary())
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="inferno-cluster-")
        self.store = KubeStore()
        self.api = KubeApiServer(self.store)
        self.prometheus: PrometheusRunner | None = None
        self.reconciler: Reconciler | None = None
        self.load: LoadGenerator | None = None
        self.kubeconfig_path = os.path.join(self.workdir, "kubeconfig")

    @classmethod
    def from_file(cls, path: str, **kwargs: Any) -> Cluster:
        """A Cluster from a YAML or JSON file."""
        return cls(load_config(path), **kwargs)

    @property
    def prometheus_url(self) -> str | None:
        """Prometheus' base URL, or None when it does not run."""
        return self.prometheus.url if self.prometheus else None

    @property
    def api_url(self) -> str:
        """The Kubernetes API emulator's base URL."""
        return self.api.url

    def start(self, wait_ready_s: float = 60.0, start_load: bool = False) -> Cluster:
        """Start the API server, Prometheus (if wanted and installed), the reconciler and the Deployments;
        wait until every Deployment has its replicas ready; optionally start the configured loads."""
        try:
            self._start(wait_ready_s)
        except BaseException:
            self.stop()
            raise
        if start_load:
            self.start_load()
        return self

    def _start(self, wait_ready_s: float) -> None:
        cfg = self.config
        self.api.start()
        write_kubeconfig(self.kubeconfig_path, self.api.url)
        sd_path = None
        if self._want_prometheus:
            interval = float(cfg.get("scrape_interval_s", 1.0))
            self.prometheus = PrometheusRunner(os.path.join(self.workdir, "prometheus"), interval, interval)
            os.makedirs(self.prometheus.workdir, exist_ok=True)
            sd_path = self.prometheus.sd_path
        self.reconciler = Reconciler(self.store, startup_delay_s=float(cfg.get("startup_delay_s", 1.0)),
                                     grace_s=float(cfg.get("grace_s", 30.0)),
                                     time_scale=float(cfg.get("time_scale", 1.0)), sd_path=sd_path).start()
        if self.prometheus is not None:
            self.prometheus.start()
        for namespace in cfg.get("namespaces") or []:
            self.store.create("v1", "namespaces", None, {"metadata": {"name": namespace}})
        for spec in cfg.get("deployments") or []:
            obj = deployment_object(spec)
            self.store.create("apps/v1", "deployments", obj["metadata"]["namespace"], obj)
        self.wait_ready(wait_ready_s)

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every configured Deployment has ``replicas`` ready replicas (and Prometheus sees them)."""
        end = time.monotonic() + timeout_s
        specs = self.config.get("deployments") or []
        for spec in specs:
            left = max(end - time.monotonic(), 0.0)
            if not self.reconciler.wait_ready(spec.get("namespace", "default"), spec["name"],
                                              int(spec.get("replicas", 1)), left):
                return False
        total = sum(int(s.get("replicas", 1)) for s in specs)
        return self.prometheus is None or self.prometheus.wait_targets_up(total, max(end - time.monotonic(), 1.0))

    def endpoints(self, namespace: str, deployment: str) -> list[str]:
        """Base URLs of the Deployment's ready replicas."""
        return self.reconciler.endpoints(namespace, deployment) if self.reconciler else []

    def start_load(self, seed: int = 0) -> LoadGenerator:
        """Start the configured ``loads`` in the background; returns the generator (wait() gives reports)."""
        targets = [self._target(spec) for spec in self.config.get("loads") or []]
        self.load = LoadGenerator(targets, seed=seed).start()
        return self.load

    def _target(self, spec: dict) -> Target:
        namespace, name = spec.get("namespace", "default"), spec["deployment"]
        return Target(f"{namespace}/{name}", lambda: self.endpoints(namespace, name), parse_schedule(spec["phases"]),
                      parse_length(spec.get("in_tokens", 128), minimum=0), parse_length(spec.get("out_tokens", 64)),
                      slo_ttft_ms=float(spec.get("slo_ttft_ms", 0)), slo_itl_ms=float(spec.get("slo_itl_ms", 0)))

    def stop(self) -> None:
        """Stop the load, the replicas (no grace), Prometheus and the API server; remove the work directory."""
        if self.load is not None:
            self.load.stop()
        if self.reconciler is not None:
            self.reconciler.stop(grace_s=0.0)
        if self.load is not None:
            self.load.drain_s = 2.0
            self.load.wait()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.api.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
