"""What a Deployment's pod template means to the emulator, and the ReplicaSet and Pod objects built from it.

The emulated vLLM parameters of a Deployment come from its pod template (first match wins):
- perfParms: annotations ``inferno.emulator/alpha``, ``inferno.emulator/beta``, ``inferno.emulator/gamma`` (ms);
  absent ones are 0, except alpha, which defaults to 10 ms (a server with no cost would be meaningless);
- batch limit: annotation ``inferno.emulator/max-num-seqs``, else the container arg ``--max-num-seqs N`` (or
  ``=N``), else the template label ``inferno.server.allocation.maxbatchsize``, else 256;
- KV cache: annotation ``inferno.emulator/kv-cache-tokens``, else the container arg
  ``--num-gpu-blocks-override N`` (or the annotation ``inferno.emulator/num-gpu-blocks-override``) x the block
  size, else 1,048,576 tokens;
- KV block size: annotation ``inferno.emulator/block-size``, else the container arg ``--block-size N``, else 16;
- token budget per iteration: annotation ``inferno.emulator/max-num-batched-tokens``, else the container arg
  ``--max-num-batched-tokens N``, else vLLM's default (8192 with chunked prefill, else the KV cache's size);
- chunked prefill: annotation ``inferno.emulator/enable-chunked-prefill`` (true/false), else the container
  flags ``--enable-chunked-prefill`` / ``--no-enable-chunked-prefill`` (``=true``/``=false`` or a following
  true/false also read), else on (vLLM V1's default);
- longest context: annotation ``inferno.emulator/max-model-len``, else the container arg ``--max-model-len N``,
  else what the KV cache holds (a longer request gets vLLM's 400);
- scheduling policy: annotation ``inferno.emulator/scheduling-policy``, else the container arg
  ``--scheduling-policy fcfs|priority`` (vLLM's), else fcfs;
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

from emulator.enginecore import DEFAULT_BLOCK_SIZE, EngineParams

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


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(args: list[str], name: str) -> bool | None:
    """A vLLM boolean flag: ``--name`` (optionally ``=VALUE`` or followed by true/false) or ``--no-name``;
    None when absent. The last occurrence wins, as with argparse."""
    value = None
    negative = "--no-" + name.removeprefix("--")
    for i, arg in enumerate(args):
        if arg == negative:
            value = False
        elif arg == name:
            following = args[i + 1].lower() if i + 1 < len(args) else ""
            value = following not in _FALSE
        elif arg.startswith(name + "="):
            value = _boolean(arg.split("=", 1)[1], name)
    return value


def _boolean(text: str, name: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"{name}: {text!r} is not true or false")


def engine_params(deployment: dict, time_scale: float = 1.0) -> EngineParams:
    """The EngineParams of a Deployment's replicas (module docstring); ValueError on a malformed value
    (naming the annotation or argument)."""
    template = _template(deployment)
    meta = template.get("metadata") or {}
    notes, labels, args = meta.get("annotations") or {}, meta.get("labels") or {}, _args(template)

    def setting(annotation: str, arg: str | None, default: str | None) -> str | None:
        return notes.get(PREFIX + annotation) or (_arg(args, arg) if arg else None) or default

    def integer(annotation: str, arg: str | None, default: str | None) -> int | None:
        text = setting(annotation, arg, default)
        try:
            return None if text is None else int(text)
        except ValueError:
            raise ValueError(f"{PREFIX}{annotation} / {arg}: {text!r} is not an integer") from None

    seqs = setting("max-num-seqs", "--max-num-seqs", labels.get("inferno.server.allocation.maxbatchsize")
                   or str(DEFAULT_MAX_NUM_SEQS))
    block_size = integer("block-size", "--block-size", str(DEFAULT_BLOCK_SIZE))
    blocks = integer("num-gpu-blocks-override", "--num-gpu-blocks-override", None) if not notes.get(
        PREFIX + "kv-cache-tokens") else None
    kv_default = str(blocks * block_size) if blocks else str(DEFAULT_KV_CACHE_TOKENS)
    chunked_note = notes.get(PREFIX + "enable-chunked-prefill")
    chunked = (_boolean(chunked_note, PREFIX + "enable-chunked-prefill") if chunked_note is not None
               else _flag(args, "--enable-chunked-prefill"))
    return EngineParams(
        alpha_ms=float(notes.get(PREFIX + "alpha", DEFAULT_ALPHA_MS)),
        beta_ms=float(notes.get(PREFIX + "beta", 0.0)),
        gamma_ms=float(notes.get(PREFIX + "gamma", 0.0)),
        max_num_seqs=max(int(seqs), 1),
        kv_cache_tokens=integer("kv-cache-tokens", None, kv_default),
        time_scale=float(notes.get(PREFIX + "time-scale", time_scale)),
        block_size=block_size,
        max_num_batched_tokens=integer("max-num-batched-tokens", "--max-num-batched-tokens", None),
        enable_chunked_prefill=True if chunked is None else chunked,
        max_model_len=integer("max-model-len", "--max-model-len", None),
        scheduling_policy=setting("scheduling-policy", "--scheduling-policy", "fcfs"))


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
