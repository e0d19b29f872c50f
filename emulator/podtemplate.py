"""What a Deployment's pod template means to the emulator, and the ReplicaSet and Pod objects built from it.

The emulated vLLM parameters of a Deployment come from its pod template (first match wins):
- perfParms: annotations ``inferno.emulator/alpha``, ``inferno.emulator/beta``, ``inferno.emulator/gamma`` (ms);
  absent ones are 0, except alpha, which defaults to 10 ms (a server with no cost would be meaningless);
- batch limit: annotation ``inferno.emulator/max-num-seqs``, else the container arg ``--max-num-seqs N`` (or
  ``=N``), else the template label ``inferno.server.allocation.maxbatchsize``, else 256;
- KV cache: annotation ``inferno.emulator/kv-cache-tokens``, else 1,048,576 tokens;
- time scale: annotation ``inferno.emulator/time-scale`` (multiplies every iteration), else the cluster's;
- start-up delay: annotation ``inferno.emulator/startup-delay-seconds``, else the cluster's;
- served model name: container arg ``--served-model-name`` or ``--model``, else the template label
  ``inferno.server.model``, else the Deployment's name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from datetime import UTC, datetime

from emulator.vllmengine import EngineParams

PREFIX = "inferno.emulator/"
PORT_ANNOTATION = PREFIX + "port"
DEFAULT_ALPHA_MS = 10.0
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_KV_CACHE_TOKENS = 1 << 20


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template(deployment: dict) -> dict:
    return (deployment.get("spec") or {}).get("template") or {}


def _args(template: dict) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return [str(a) for a in [*(containers[0].get("command") or []), *(containers[0].get("args") or [])]]


def _arg(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def engine_params(deployment: dict, time_scale: float = 1.0) -> EngineParams:
    """The EngineParams of a Deployment's replicas (module docstring); ValueError on a malformed value."""
    template = _template(deployment)
    meta = template.get("metadata") or {}
    notes, labels, args = meta.get("annotations") or {}, meta.get("labels") or {}, _args(template)
    seqs = (notes.get(PREFIX + "max-num-seqs") or _arg(args, "--max-num-seqs")
            or labels.get("inferno.server.allocation.maxbatchsize") or DEFAULT_MAX_NUM_SEQS)
    return EngineParams(
        alpha_ms=float(notes.get(PREFIX + "alpha", DEFAULT_ALPHA_MS)),
        beta_ms=float(notes.get(PREFIX + "beta", 0.0)),
        gamma_ms=float(notes.get(PREFIX + "gamma", 0.0)),
        max_num_seqs=max(int(seqs), 1),
        kv_cache_tokens=int(notes.get(PREFIX + "kv-cache-tokens", DEFAULT_KV_CACHE_TOKENS)),
        time_scale=float(notes.get(PREFIX + "time-scale", time_scale)))


def startup_delay_s(deployment: dict, default_s: float) -> float:
    """The start-up delay of the Deployment's pods, seconds."""
    notes = (_template(deployment).get("metadata") or {}).get("annotations") or {}
    return float(notes.get(PREFIX + "startup-delay-seconds", default_s))


def model_name(deployment: dict) -> str:
    """The model name the replicas serve."""
    template = _template(deployment)
    args = _args(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    return (_arg(args, "--served-model-name") or _arg(args, "--model") or labels.get("inferno.server.model")
            or deployment["metadata"]["name"])


def template_hash(deployment: dict) -> str:
    """A short stable hash of the pod template (Kubernetes' pod-template-hash role)."""
    text = json.dumps(_template(deployment), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def owner_ref(obj: dict) -> dict:
    """A controller ownerReference to ``obj``."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def replicaset_name(deployment: dict) -> str:
    """The name of the ReplicaSet of the Deployment's current template: ``{deployment}-{template hash}``."""
    return f"{deployment['metadata']['name']}-{template_hash(deployment)}"


def replicaset_for(deployment: dict, replicas: int) -> dict:
    """The ReplicaSet object of the Deployment's current template."""
    digest = template_hash(deployment)
    meta = deployment["metadata"]
    template = copy.deepcopy(_template(deployment))
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
    selector = copy.deepcopy((deployment.get("spec") or {}).get("selector") or {})
    selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
    return {"metadata": {"name": replicaset_name(deployment), "namespace": meta["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "ownerReferences": [owner_ref(deployment)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template}}


def pod_for(replicaset: dict, port: int) -> dict:
    """A Pending Pod of ``replicaset`` whose emulated replica listens on 127.0.0.1:port."""
    template = replicaset["spec"]["template"]
    meta = template.get("metadata") or {}
    containers = copy.deepcopy((template.get("spec") or {}).get("containers") or [{"name": "vllm"}])
    containers[0].setdefault("name", "vllm")
    containers[0]["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    return {"metadata": {"name": f"{replicaset['metadata']['name']}-{secrets.token_hex(3)[:5]}",
                         "namespace": replicaset["metadata"]["namespace"], "labels": dict(meta.get("labels") or {}),
                         "annotations": {**(meta.get("annotations") or {}), PORT_ANNOTATION: str(port)},
                         "ownerReferences": [owner_ref(replicaset)]},
            "spec": {"containers": containers, "nodeName": "emulator"},
            "status": pod_status(ready=False)}


def pod_status(ready: bool) -> dict:
    """A Pod status: Pending and not ready, or Running and Ready; podIP 127.0.0.1 either way."""
    flag = "True" if ready else "False"
    now = _now()
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                  {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                  {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                  {"type": "Ready", "status": flag, "lastTransitionTime": now}]
    return {"phase": "Running" if ready else "Pending", "conditions": conditions, "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}], "hostIP": "127.0.0.1", "startTime": now}
