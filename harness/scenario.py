"""The demo's scenario: three servers of the small sample set on an emulated cluster, and a load step.

Everything the optimizer is told comes from samples/inferno/small (accelerators, model performance data,
service classes, optimizer settings); the cluster is described so that it agrees with that data: each
emulated vLLM replica runs the sample's perfParms of its model on G2, with the batch limit its Deployment's
``inferno.server.allocation.maxbatchsize`` label tells the optimizer. The capacity file lists 8 G2 cards, the
only accelerator the demo cluster has. Requests are short (128 prompt / 64 output tokens) so that 2 CPU cores
can emulate every token (see emulator/examples/small3.yaml for the sizing).

The load: every server gets its base rate from the start; at ``step_at_s`` the stepped server's rate is
multiplied by ``step_factor`` and stays there. With the defaults, Premium-llama_13b goes from 1.5 to 4.5
req/s, beyond what one replica can carry (about 3.1 req/s at batch 4).

Percentile targets: the demo's Premium class states, for llama_13b, a P90 TTFT of 1,000 ms and a P90 ITL of 80
ms beside the sample's means (``DemoServer.ttft_p90_ms``/``itl_p90_ms``; the data files the stack writes carry
them as ``slo-ttft-p90``/``slo-itl-p90``). At the stepped rate the P90 TTFT is the target that binds: on two
replicas at 244 req/min (what the collector measures after the scale-up) the means alone would let the
optimizer run batch 3, predicting a mean TTFT of 0.7 s but a P90 of 2 s; the P90 target makes it batch 4
(P90 0.5 s), and from about 290 req/min three replicas where the means still take two
(tests/optimizer/test_demo_percentiles.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from services.core import datafiles
from services.core import model as m
from services.perfmodel.servicetime import QUEUE_TO_BATCH_RATIO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples", "inferno", "small")
MANIFESTS = os.path.join(ROOT, "manifests", "samples")
ACCELERATOR = "G2"
NAMESPACE = "llm"


@dataclass(frozen=True, slots=True)
class DemoServer:
    """One emulated server: sample-set names, batch limit, base load (req/s) and the P90 targets (ms, 0 =
    none) the demo adds to its class's target for its model (see the module docstring)."""

    name: str
    service_class: str
    model: str
    max_batch: int
    base_rps: float
    ttft_p90_ms: float = 0.0
    itl_p90_ms: float = 0.0

    @property
    def deployment(self) -> str:
        """The Deployment's name (a DNS label made from the server name)."""
        return self.name.lower().replace("_", "-")


SERVERS = (
    DemoServer("Premium-llama_13b", "Premium", "llama_13b", 4, 1.5, ttft_p90_ms=1000.0, itl_p90_ms=80.0),
    DemoServer("Bronze-granite_13b", "Bronze", "granite_13b", 2, 0.5),
    DemoServer("Free-granite_34b", "Free", "granite_34b", 4, 0.8),
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Timings (seconds, from the start of the load) and the load step of one demo run.

    The emulated replicas run at most ``max_batch`` requests at once (vLLM's --max-num-seqs), far fewer than
    the sample data's G2 batch limits (hundreds), so that 2 cores can emulate them. The model data tells the
    optimizer the same: maxBatchSize = ``max_batch`` at ``batch_at_tokens`` tokens, which Inferno's batch rule
    (docs/model.md s4: floor(maxBatchSize x atTokens / output tokens)) turns back into ``max_batch`` for any
    measured output length from 58 to 72 tokens (batch 4; 49 to 72 for batch 2) around the 64 we send.
    """

    servers: tuple[DemoServer, ...] = SERVERS
    stepped: str = "Premium-llama_13b"
    step_factor: float = 3.0
    step_at_s: float = 45.0
    duration_s: float = 200.0
    in_tokens: int = 128
    out_tokens: int = 64
    window_s: int = 30
    batch_at_tokens: int = 72
    startup_delay_s: float = 5.0
    g2_cards: int = 8

    def server(self, name: str) -> DemoServer:
        """The server called ``name``; KeyError if there is none."""
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)


def static_system(scenario: Scenario) -> m.SystemData:
    """The optimizer's static data: the small sample set without its servers, capacity = the demo's G2 cards,
    the demo servers' batch limits on G2 scaled to the emulator's (see ``batch_at_tokens``) and their P90
    targets added to their classes' targets (KeyError when the sample class has no target for the model)."""
    system = datafiles.load_system_dir(SAMPLES, strict=True).system
    limits = {s.model: s.max_batch for s in scenario.servers}
    models = tuple(replace(p, max_batch_size=limits[p.model], at_tokens=scenario.batch_at_tokens)
                   if p.accelerator == ACCELERATOR and p.model in limits else p for p in system.models)
    classes = system.service_classes
    for server in scenario.servers:
        if server.ttft_p90_ms > 0 or server.itl_p90_ms > 0:
            target = replace(slo(system, server), slo_ttft_p90_ms=server.ttft_p90_ms, slo_itl_p90_ms=server.itl_p90_ms)
            classes = tuple(replace(c, targets=tuple(target if t.model == server.model else t for t in c.targets))
                            if c.name == server.service_class else c for c in classes)
    return replace(system, models=models, service_classes=classes, servers=(),
                   capacity=m.Capacity({ACCELERATOR: scenario.g2_cards}))


def write_static_data(scenario: Scenario, path: str) -> str:
    """Write the six data files the services read (INFERNO_DATA_PATH) into ``path``; returns ``path``."""
    datafiles.write_system_dir(path, static_system(scenario))
    return path


def slo(system: m.SystemData, server: DemoServer) -> m.ModelTarget:
    """The server's SLO targets from its service class; KeyError when the sample data has none."""
    service_class = system.service_class(server.service_class)
    target = service_class.target_for(server.model) if service_class else None
    if target is None:
        raise KeyError(f"no target for model {server.model} in class {server.service_class}")
    return target


def cluster_config(scenario: Scenario, system: m.SystemData, prometheus: bool = True) -> dict[str, Any]:
    """The emulator's cluster description (emulator/cluster.py): per server, its sample Deployment
    (manifests/samples/<deployment>.yaml, as users apply it) with one replica, allocated to G2 with the
    demo's batch limit (label and emulated --max-num-seqs), the sample data's perfParms; and the loads with
    the step."""
    deployments, loads = [], []
    for server in scenario.servers:
        perf = system.perf(server.model, ACCELERATOR)
        if perf is None:
            raise KeyError(f"no perfParms for {server.model} on {ACCELERATOR} in {SAMPLES}")
        target = slo(system, server)
        deployments.append({
            "name": server.deployment, "manifest": os.path.join(MANIFESTS, f"{server.deployment}.yaml"),
            "namespace": NAMESPACE, "server": server.name, "replicas": 1,
            "model": server.model, "class": server.service_class, "accelerator": ACCELERATOR,
            "maxbatchsize": server.max_batch, "max_num_seqs": server.max_batch,
            "maxqueuesize": server.max_batch * QUEUE_TO_BATCH_RATIO,
            "perf": {"alpha": perf.perf.alpha_ms, "beta": perf.perf.beta_ms, "gamma": perf.perf.gamma_ms},
            "load": {"rpm": round(server.base_rps * 60, 3), "intokens": scenario.in_tokens,
                     "outtokens": scenario.out_tokens}})
        if server.name == scenario.stepped:
            phases = [{"rate_rps": server.base_rps, "duration_s": scenario.step_at_s},
                      {"rate_rps": server.base_rps * scenario.step_factor,
                       "duration_s": scenario.duration_s - scenario.step_at_s}]
        else:
            phases = [{"rate_rps": server.base_rps, "duration_s": scenario.duration_s}]
        loads.append({"deployment": server.deployment, "namespace": NAMESPACE, "in_tokens": scenario.in_tokens,
                      "out_tokens": scenario.out_tokens, "slo_ttft_ms": target.slo_ttft_ms,
                      "slo_itl_ms": target.slo_itl_ms, "phases": phases})
    return {"startup_delay_s": scenario.startup_delay_s, "grace_s": 30, "time_scale": 1.0, "prometheus": prometheus,
            "scrape_interval_s": 1, "namespaces": [NAMESPACE], "deployments": deployments, "loads": loads}
