"""The whole local cluster from one small YAML/JSON description: API server, replicas, Prometheus, load.

Config keys (all optional but ``deployments``)::

    startup_delay_s: 2        # Pending -> Running delay of every pod
    grace_s: 30               # drain limit of a removed replica
    time_scale: 1.0           # multiplies every engine iteration (perfParms x time_scale)
    prometheus: true          # start Prometheus when the binary exists
    scrape_interval_s: 1
    namespaces: [llm]
    deployments:
      - {name, namespace, replicas, server, model, class, accelerator, maxbatchsize, maxqueuesize, minreplicas,
         perf: {alpha, beta, gamma}, max_num_seqs, kv_cache_tokens, block_size, max_num_batched_tokens,
         enable_chunked_prefill, scheduling_policy, startup_delay_s, time_scale,
         load: {rpm, intokens, outtokens}, labels: {...}, annotations: {...}, manifest: path}
    pools:                    # several classes sharing Deployments (docs/contract.md s10)
      - {name, namespace, deployments: [names], classes: [names in priority order]}
    loads:
      - {deployment, namespace, in_tokens, out_tokens, slo_ttft_ms, slo_itl_ms, phases: [...]}  # loadshape.py
      - {pool, namespace, class, priority, in_tokens, out_tokens, phases: [...]}  # one class of a pool
      - {pool, namespace, updates: path, classes: [names], last_s, in_tokens, out_tokens}  # the seeds' schedule

A ``pool`` load goes through the pool's router (emulator/router.py): each request of the class goes to a replica
picked by the routing weights the actuator annotates the pool's Deployments with (services/core/routing.py), with
the class's ``priority`` (default: its priority in those weights, else 0). ``updates`` reads the seeds' update file
({"updates": [{"time", "request_rates", ...}]}, classes in priority order; names from ``classes`` or the file's
"classes") into one load per class with priority = its position, each update's rate holding until the next and
the last for ``last_s`` seconds (default 600).

A load's ``in_tokens`` and ``out_tokens`` are token-length distributions (emulator/loadshape.py): an int, or
``{dist: exponential, mean: 64}``, ``{dist: uniform, low: 16, high: 128}``, ``{dist: file, path: out.txt}``
(a relative path is taken from the config file's directory). Loads are checked when the cluster is built.

Each deployment becomes a managed Deployment with the inferno labels of docs/contract.md s3 on it and on its
pod template, and the emulator annotations of emulator/podtemplate.py on the template.

With ``manifest`` (a file holding one Deployment, e.g. manifests/samples/premium-llama-13b.yaml; a relative
path is taken from the config file's directory), that Deployment is created as written (selector, pod
template, vLLM container and its args), and the entry's keys are applied on top: ``name``, ``namespace`` and
``replicas`` replace the manifest's; the inferno keys (server, model, class, accelerator, ..., load, labels)
set the Deployment's labels only, as the actuator would, so the pod template keeps the manifest's identity
labels; the emulator keys (perf, max_num_seqs, ...) and ``annotations`` go to the pod template's annotations.
An emulator annotation wins over the container args (podtemplate.py), so ``max_num_seqs`` overrides the
manifest's ``--max-num-seqs``; the vLLM container's ``--max-num-seqs`` arg is set to it too, so the pod
template tells readers (the actuator's batch limit) what the replica runs with.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from typing import Any

import yaml

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubeerrors import NotFoundError
from emulator.kubestore import KubeStore
from emulator.loadgen import LoadGenerator, Target
from emulator.loadshape import parse_length, parse_schedule, update_schedules
from emulator.podtemplate import PREFIX
from emulator.prometheus import PrometheusRunner, prometheus_binary, sd_target
from emulator.reconciler import Reconciler
from emulator.router import PoolRouter
from services.core import routing


def load_config(path: str) -> dict:
    """Read a cluster description from YAML or JSON."""
    with open(path) as handle:
        text = handle.read()
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


def _contract_labels(spec: dict[str, Any]) -> dict[str, str]:
    labels = {"inferno.server.managed": "true"}
    for key, label in (("server", "name"), ("model", "model"), ("class", "class")):
        if key in spec:
            labels[f"inferno.server.{label}"] = str(spec[key])
    for key in ("accelerator", "maxbatchsize", "maxqueuesize"):
        if key in spec:
            labels[f"inferno.server.allocation.{key}"] = str(spec[key])
    if "minreplicas" in spec:
        labels["inferno.server.minreplicas"] = str(spec["minreplicas"])
    for key, value in (spec.get("load") or {}).items():
        labels[f"inferno.server.load.{key}"] = str(value)
    labels.update({k: str(v) for k, v in (spec.get("labels") or {}).items()})
    return labels


def _emulator_annotations(spec: dict[str, Any]) -> dict[str, str]:
    perf = spec.get("perf") or {}
    notes = {f"{PREFIX}{k}": str(perf[k]) for k in ("alpha", "beta", "gamma") if k in perf}
    for key, note in (("kv_cache_tokens", "kv-cache-tokens"), ("startup_delay_s", "startup-delay-seconds"),
                      ("time_scale", "time-scale"), ("max_num_seqs", "max-num-seqs"), ("block_size", "block-size"),
                      ("max_num_batched_tokens", "max-num-batched-tokens"),
                      ("enable_chunked_prefill", "enable-chunked-prefill"), ("scheduling_policy", "scheduling-policy")):
        if key in spec:
            value = spec[key]
            notes[PREFIX + note] = str(value).lower() if isinstance(value, bool) else str(value)
    notes.update({k: str(v) for k, v in (spec.get("annotations") or {}).items()})
    return notes


def load_manifest(path: str) -> dict:
    """The one Deployment in a YAML file; ValueError naming the file when it holds anything else."""
    with open(path) as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d]
    if len(documents) != 1 or not isinstance(documents[0], dict) or documents[0].get("kind") != "Deployment":
        kinds = [d.get("kind") if isinstance(d, dict) else type(d).__name__ for d in documents]
        raise ValueError(f"manifest {path}: expected exactly one Deployment, found {kinds}")
    return documents[0]


def deployment_object(spec: dict[str, Any], base_dir: str | None = None) -> dict:
    """The managed Deployment for one ``deployments`` entry (module docstring); ``base_dir`` resolves a
    relative ``manifest`` path (default: the working directory). ValueError on an entry with neither
    ``name`` nor ``manifest``, or on a manifest that is not one Deployment."""
    if "manifest" in spec:
        return _from_manifest(spec, base_dir)
    if "name" not in spec:
        raise ValueError(f"deployments entry {spec!r}: needs a name or a manifest")
    name = spec["name"]
    labels = {"app": name, "inferno.server.name": name, "inferno.server.model": name, "inferno.server.class": "Free",
              **_contract_labels(spec)}
    container = {"name": "vllm", "image": "vllm/vllm-openai:emulated",
                 "args": _policy_arg(_max_num_seqs_arg(["--model", labels["inferno.server.model"]], spec), spec)}
    return {"metadata": {"name": name, "namespace": spec.get("namespace", "default"), "labels": labels},
            "spec": {"replicas": int(spec.get("replicas", 1)), "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels, "annotations": _emulator_annotations(spec)},
                                  "spec": {"containers": [container]}}}}


def _from_manifest(spec: dict[str, Any], base_dir: str | None) -> dict:
    path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(spec["manifest"]))
    obj = copy.deepcopy(load_manifest(path))
    meta = obj.setdefault("metadata", {})
    meta["name"] = spec.get("name", meta.get("name"))
    meta["namespace"] = spec.get("namespace", meta.get("namespace", "default"))
    meta.setdefault("labels", {}).update(_contract_labels(spec))
    body = obj.setdefault("spec", {})
    body["replicas"] = int(spec.get("replicas", body.get("replicas", 1)))
    template_meta = body.setdefault("template", {}).setdefault("metadata", {})
    template_meta.setdefault("annotations", {}).update(_emulator_annotations(spec))
    for container in ((body["template"].get("spec") or {}).get("containers") or [])[:1]:
        container["args"] = _policy_arg(_max_num_seqs_arg(list(container.get("args") or []), spec), spec)
    return obj


def _max_num_seqs_arg(args: list[str], spec: dict[str, Any]) -> list[str]:
    """``args`` with ``--max-num-seqs`` set to the entry's ``max_num_seqs`` when it has one, so the pod template
    says what the replica runs with, as on a real cluster (the actuator reads it as the batch limit)."""
    if "max_num_seqs" not in spec:
        return args
    kept = [a for i, a in enumerate(args) if not a.startswith("--max-num-seqs")
            and not (i > 0 and args[i - 1] == "--max-num-seqs")]
    kept = [*kept, f"--max-num-seqs={int(spec['max_num_seqs'])}"]
    return kept


def _policy_arg(args: list[str], spec: dict[str, Any]) -> list[str]:
    """``args`` with vLLM's ``--scheduling-policy`` set to the entry's ``scheduling_policy`` when it has one."""
    if "scheduling_policy" not in spec:
        return args
    kept = [a for i, a in enumerate(args) if not a.startswith("--scheduling-policy")
            and not (i > 0 and args[i - 1] == "--scheduling-policy")]
    return [*kept, f"--scheduling-policy={spec['scheduling_policy']}"]


def _label_pools(deployments: list[dict], pools: list[dict]) -> None:
    """Label each pool's Deployments ``inferno.server.pool`` (and ``inferno.server.classes`` when the pool lists
    them), as a user declares a pool (docs/contract.md s10); ValueError on a pool naming an unknown Deployment."""
    by_key = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in deployments}
    for pool in pools:
        namespace = pool.get("namespace", "default")
        for name in pool["deployments"]:
            obj = by_key.get((namespace, name))
            if obj is None:
                raise ValueError(f"pools entry {pool['name']}: no deployment {namespace}/{name}")
            labels = obj["metadata"].setdefault("labels", {})
            labels[routing.POOL_LABEL] = pool["name"]
            if pool.get("classes"):
                labels[routing.CLASSES_LABEL] = ".".join(str(c) for c in pool["classes"])


class Cluster:
    """The emulated cluster: start()/stop() or use as a context manager."""

    def __init__(self, config: dict, *, prometheus: bool | None = None, workdir: str | None = None,
                 base_dir: str | None = None) -> None:
        """``base_dir`` resolves relative ``manifest`` and length-file paths (default: the working directory).
        ValueError, KeyError or OSError when a deployments or loads entry cannot be built (before anything
        starts)."""
        self.config = config
        self.deployments = [deployment_object(spec, base_dir) for spec in config.get("deployments") or []]
        _label_pools(self.deployments, config.get("pools") or [])
        self.store = KubeStore()
        self.routers = {(p.get("namespace", "default"), p["name"]): self._router(p) for p in config.get("pools") or []}
        self.targets = [t for spec in config.get("loads") or [] for t in self._targets(spec, base_dir)]
        want = config.get("prometheus", True) if prometheus is None else prometheus
        self._want_prometheus = bool(want and prometheus_binary())
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="inferno-cluster-")
        self.api = KubeApiServer(self.store)
        self.prometheus: PrometheusRunner | None = None
        self.reconciler: Reconciler | None = None
        self.load: LoadGenerator | None = None
        self.kubeconfig_path = os.path.join(self.workdir, "kubeconfig")

    def _router(self, spec: dict) -> PoolRouter:
        namespace, name, members = spec.get("namespace", "default"), spec["name"], list(spec["deployments"])

        def read() -> dict[str, str]:
            notes = {}
            for deployment in members:
                try:
                    obj = self.store.get("apps/v1", "deployments", namespace, deployment)
                except NotFoundError:
                    continue
                value = ((obj.get("metadata") or {}).get("annotations") or {}).get(routing.ANNOTATION)
                if value is not None:
                    notes[deployment] = value
            return notes
        return PoolRouter(name, members, lambda d: self.endpoints(namespace, d), read,
                          classes=[str(c) for c in spec.get("classes") or []])

    @classmethod
    def from_file(cls, path: str, **kwargs: Any) -> Cluster:
        """A Cluster from a YAML or JSON file; relative manifest paths are taken from the file's directory."""
        kwargs.setdefault("base_dir", os.path.dirname(os.path.abspath(path)))
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
                                     time_scale=float(cfg.get("time_scale", 1.0)), sd_path=sd_path)
        for (namespace, pool), router in self.routers.items():  # per-class counters (emulator/router.py)
            self.reconciler.static_groups.append(sd_target(router.serve(), {"namespace": namespace, "pool": pool}))
        self.reconciler.start()
        if self.prometheus is not None:
            self.prometheus.start()
        for namespace in cfg.get("namespaces") or []:
            self.store.create("v1", "namespaces", None, {"metadata": {"name": namespace}})
        for obj in self.deployments:
            self.store.create("apps/v1", "deployments", obj["metadata"]["namespace"], copy.deepcopy(obj))
        self.wait_ready(wait_ready_s)

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every configured Deployment has ``replicas`` ready replicas (and Prometheus sees them)."""
        end = time.monotonic() + timeout_s
        for obj in self.deployments:
            left = max(end - time.monotonic(), 0.0)
            if not self.reconciler.wait_ready(obj["metadata"]["namespace"], obj["metadata"]["name"],
                                              obj["spec"]["replicas"], left):
                return False
        total = sum(obj["spec"]["replicas"] for obj in self.deployments) + len(self.routers)
        return self.prometheus is None or self.prometheus.wait_targets_up(total, max(end - time.monotonic(), 1.0))

    def endpoints(self, namespace: str, deployment: str) -> list[str]:
        """Base URLs of the Deployment's ready replicas."""
        return self.reconciler.endpoints(namespace, deployment) if self.reconciler else []

    def start_load(self, seed: int = 0) -> LoadGenerator:
        """Start the configured ``loads`` in the background; returns the generator (wait() gives reports)."""
        self.load = LoadGenerator(self.targets, seed=seed).start()
        return self.load

    def _targets(self, spec: dict, base_dir: str | None) -> list[Target]:
        if "pool" not in spec:
            return [self._target(spec, base_dir)]
        namespace, pool = spec.get("namespace", "default"), spec["pool"]
        router = self.routers.get((namespace, pool))
        if router is None:
            raise ValueError(f"loads entry for pool {namespace}/{pool}: no such entry in pools")
        lengths = self._lengths(spec, f"{namespace}/{pool}", base_dir)
        if "updates" not in spec:
            name = str(spec["class"])
            priority = spec.get("priority")
            return [Target(f"{namespace}/{pool}/{name}", router.endpoints_for(name), parse_schedule(spec["phases"]),
                           *lengths, priority=router.priority(name) if priority is None else int(priority))]
        path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(spec["updates"]))
        with open(path) as handle:
            doc = json.load(handle)
        schedules = update_schedules(doc.get("updates"), float(spec.get("last_s", 600)))
        names = spec.get("classes") or doc.get("classes") or [f"class{c + 1}" for c in range(len(schedules))]
        if len(names) != len(schedules):
            raise ValueError(f"loads entry for pool {namespace}/{pool}: {len(names)} class names for "
                             f"{len(schedules)} classes in {spec['updates']}")
        return [Target(f"{namespace}/{pool}/{name}", router.endpoints_for(str(name)), schedule, *lengths, priority=c)
                for c, (name, schedule) in enumerate(zip(names, schedules, strict=True))]

    def _lengths(self, spec: dict, where: str, base_dir: str | None) -> list:
        lengths = []
        for key, default, minimum in (("in_tokens", 128, 0), ("out_tokens", 64, 1)):
            try:
                lengths.append(parse_length(spec.get(key, default), minimum, base_dir))
            except (KeyError, ValueError) as error:
                raise ValueError(f"loads entry for {where}: {key}: {error}") from None
        return lengths

    def _target(self, spec: dict, base_dir: str | None) -> Target:
        namespace, name = spec.get("namespace", "default"), spec["deployment"]
        lengths = self._lengths(spec, f"{namespace}/{name}", base_dir)
        return Target(f"{namespace}/{name}", lambda: self.endpoints(namespace, name), parse_schedule(spec["phases"]),
                      *lengths, slo_ttft_ms=float(spec.get("slo_ttft_ms", 0)),
                      slo_itl_ms=float(spec.get("slo_itl_ms", 0)))

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
        for router in self.routers.values():
            router.stop()
        self.api.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
