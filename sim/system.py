"""The scenario's server as the optimizer and the collector know it: Inferno data and Deployment labels.

One accelerator (the scenario's, cost per hour as given), the model's perfParms on it with maxBatchSize =
vLLM's max-num-seqs measured at the scenario's mean output length (so the batch rule of docs/model.md s4 gives
max-num-seqs back at that length), one service class with the scenario's TTFT and ITL targets (the optimizer
reads them as means, docs/model.md s1), capacity = max replicas x accelerators per replica, and the optimizer
settings' defaults with the RoundRobin saturation policy (a load beyond capacity still gets every card).
"""

from __future__ import annotations

import random
import statistics
from functools import lru_cache

from emulator.loadshape import Length
from services.core import model as m
from sim.scenario import Scenario

_LENGTH_SAMPLES = 20_000

NAMESPACE = "sim"


def deployment_name(scenario: Scenario) -> str:
    """The simulated Deployment's name (a DNS label from the server name)."""
    return scenario.server.name.lower().replace("_", "-")


def static_data(scenario: Scenario) -> m.SystemData:
    """Static system data (no servers) for the optimizer."""
    server = scenario.server
    accelerator = m.Accelerator(server.accelerator, server.accelerator, cost_per_hour=server.cost_per_hour)
    at_tokens = max(int(round(scenario.load.output_tokens.mean)), 1)
    perf = m.ModelPerf(server.model, server.accelerator, server.acc_count, server.max_num_seqs, at_tokens,
                       m.PerfParms(server.perf.alpha_ms, server.perf.beta_ms, server.perf.gamma_ms))
    slo = scenario.slo
    if slo.percentile:  # the SLOs read as percentiles: the optimizer sizes for them (docs/model.md s3.2)
        target = m.ModelTarget(server.model, **{m.percentile_field("itl", slo.percentile): slo.itl_ms,
                                                m.percentile_field("ttft", slo.percentile): slo.ttft_ms})
    else:
        target = m.ModelTarget(server.model, slo_itl_ms=slo.itl_ms, slo_ttft_ms=slo.ttft_ms)
    service_class = m.ServiceClass(server.service_class, 1, (target,))
    capacity = m.Capacity({server.accelerator: scenario.cluster.max_replicas * server.acc_count})
    settings = m.OptimizerSettings(saturation_policy=m.SaturationPolicy.ROUND_ROBIN,
                                   token_budget=server.max_num_batched_tokens)
    return m.SystemData(accelerators=(accelerator,), models=(perf,), service_classes=(service_class,),
                        optimizer=settings, capacity=capacity)


def labels(scenario: Scenario) -> dict[str, str]:
    """The managed Deployment's labels (docs/contract.md s3), without load labels."""
    server = scenario.server
    return {"inferno.server.managed": "true", "inferno.server.name": server.name,
            "inferno.server.model": server.model, "inferno.server.class": server.service_class,
            "inferno.server.allocation.accelerator": server.accelerator,
            "inferno.server.allocation.maxbatchsize": str(server.max_num_seqs),
            "inferno.server.minreplicas": str(scenario.cluster.min_replicas)}


@lru_cache(maxsize=64)
def length_stats(length: Length) -> tuple[float, float]:
    """(mean, C2 = variance / mean^2) of a length distribution as sampled (clipping included)."""
    rng = random.Random(0)
    values = [length.sample(rng) for _ in range(_LENGTH_SAMPLES)]
    mean = statistics.fmean(values)
    return mean, (statistics.pvariance(values, mean) / mean**2 if mean > 0 else 0.0)


def server_for_load(scenario: Scenario, rate_rps: float, replicas: int = 1) -> m.Server:
    """The server record at a given offered load (the scenario's true mean lengths and output C2) and replicas."""
    in_mean, _ = length_stats(scenario.load.prompt_tokens)
    out_mean, out_c2 = length_stats(scenario.load.output_tokens)
    load = m.Load(rate_rps * 60.0, in_mean, out_mean, out_c2)
    current = m.Allocation(scenario.server.accelerator, replicas, scenario.server.max_num_seqs, load=load)
    return m.Server(scenario.server.name, scenario.server.service_class, scenario.server.model,
                    min_replicas=scenario.cluster.min_replicas, current=current)


def sizer(scenario: Scenario):
    """A cached function rate_rps -> replicas the optimizer allocates for that load (rates rounded to 1e-3)."""
    from dataclasses import replace

    from services.optimizer.solver import solve

    static = static_data(scenario)

    @lru_cache(maxsize=4096)
    def size(rate_milli_rps: int) -> int:
        if rate_milli_rps <= 0:
            return scenario.cluster.min_replicas
        server = server_for_load(scenario, rate_milli_rps / 1000.0)
        solution = solve(replace(static, servers=(server,))).solution
        allocation = solution.allocations.get(server.name)
        if allocation is None:
            return scenario.cluster.max_replicas
        return allocation.num_replicas

    return lambda rate_rps: size(int(round(rate_rps * 1000)))
