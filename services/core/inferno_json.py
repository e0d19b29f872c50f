"""Model -> Inferno JSON: the dictionaries that Inferno's own decoder accepts, with its key spellings.

Our extension fields (settings serviceModel/blockingBound/timeLimitSeconds/solver; allocation maxQueue, saturated,
unservedRate) are written only when they differ from their defaults; Inferno ignores keys it does not know.
"""

from __future__ import annotations

from typing import Any

from services.core import model as m


def load_json(load: m.Load) -> dict[str, Any]:
    """Load -> {"arrivalRate", "avgInTokens", "avgOutTokens"} (and "outTokensC2" when measured)."""
    data: dict[str, Any] = {"arrivalRate": load.arrival_rate_rpm, "avgInTokens": load.avg_in_tokens,
                            "avgOutTokens": load.avg_out_tokens}
    if load.out_tokens_c2 is not None:
        data["outTokensC2"] = load.out_tokens_c2
    return data


def perf_parms_json(perf: m.PerfParms) -> dict[str, Any]:
    """PerfParms -> {"alpha", "beta", "gamma"} (and "ttftOverhead" when set)."""
    data: dict[str, Any] = {"alpha": perf.alpha_ms, "beta": perf.beta_ms, "gamma": perf.gamma_ms}
    if perf.ttft_overhead_ms:
        data["ttftOverhead"] = perf.ttft_overhead_ms
    return data


def allocation_json(alloc: m.Allocation) -> dict[str, Any]:
    """Allocation -> Inferno's allocation object (plus our flags when set)."""
    data: dict[str, Any] = {
        "accelerator": alloc.accelerator, "numReplicas": alloc.num_replicas, "maxBatch": alloc.max_batch,
        "cost": alloc.cost_per_hour, "itlAverage": alloc.itl_ms, "ttftAverage": alloc.ttft_ms,
        "load": load_json(alloc.load),
    }
    if alloc.max_queue:
        data["maxQueue"] = alloc.max_queue
    if alloc.saturated or alloc.unserved_rate_rpm:
        data["saturated"] = alloc.saturated
        data["unservedRate"] = alloc.unserved_rate_rpm
    return data


def accelerator_json(acc: m.Accelerator) -> dict[str, Any]:
    """Accelerator -> accelerator-data.json entry."""
    power = acc.power
    return {"name": acc.name, "type": acc.type, "multiplicity": acc.multiplicity, "memSize": acc.mem_size_gb,
            "memBW": acc.mem_bw_gbps, "power": {"idle": power.idle_w, "full": power.full_w,
                                                 "midPower": power.mid_power_w, "midUtil": power.mid_util},
            "cost": acc.cost_per_hour}


def model_perf_json(perf: m.ModelPerf) -> dict[str, Any]:
    """ModelPerf -> model-data.json entry."""
    return {"name": perf.model, "acc": perf.accelerator, "accCount": perf.acc_count,
            "maxBatchSize": perf.max_batch_size, "atTokens": perf.at_tokens,
            "perfParms": perf_parms_json(perf.perf)}


def service_class_json(sc: m.ServiceClass) -> dict[str, Any]:
    """ServiceClass -> serviceclass-data.json entry (zero targets omitted, as in Inferno's samples)."""
    targets = []
    for t in sc.targets:
        target: dict[str, Any] = {"model": t.model}
        for key, value in (("slo-itl", t.slo_itl_ms), ("slo-ttft", t.slo_ttft_ms), ("slo-tps", t.slo_tps)):
            if value:
                target[key] = value
        for metric, q, value in t.percentile_targets():
            target[m.percentile_key(metric, q)] = value
        targets.append(target)
    return {"name": sc.name, "priority": sc.priority, "modelTargets": targets}


def server_json(server: m.Server) -> dict[str, Any]:
    """Server -> server-data.json entry."""
    data: dict[str, Any] = {"name": server.name, "class": server.service_class, "model": server.model,
                            "keepAccelerator": server.keep_accelerator, "minNumReplicas": server.min_replicas,
                            "maxBatchSize": server.max_batch_size, "currentAlloc": allocation_json(server.current)}
    if server.max_queue_size:
        data["maxQueueSize"] = server.max_queue_size
    if server.desired is not None:
        data["desiredAlloc"] = allocation_json(server.desired)
    return data


def settings_json(s: m.OptimizerSettings) -> dict[str, Any]:
    """OptimizerSettings -> the "optimizer" object of optimizer-data.json."""
    defaults = m.OptimizerSettings()
    data: dict[str, Any] = {"unlimited": s.unlimited, "heterogeneous": s.heterogeneous, "milpSolver": s.milp_solver,
                            "useCplex": s.use_cplex, "delayedBestEffort": s.delayed_best_effort,
                            "saturationPolicy": s.saturation_policy.value}
    if s.service_model != defaults.service_model:
        data["serviceModel"] = s.service_model.value
    if s.blocking_bound != defaults.blocking_bound:
        data["blockingBound"] = s.blocking_bound
    if s.time_limit_s != defaults.time_limit_s:
        data["timeLimitSeconds"] = s.time_limit_s
    if s.output_c2 != defaults.output_c2:
        data["outputC2"] = s.output_c2
    if s.token_budget != defaults.token_budget:
        data["tokenBudget"] = s.token_budget
    if s.solver is not None:
        data["solver"] = s.solver.value
    if s.robustness is not None:
        data["robustness"] = robustness_json(s.robustness)
    return data


def _deviation_json(d: m.Deviation) -> float | dict[str, float]:
    return d.alpha if d.alpha == d.beta == d.gamma else {"alpha": d.alpha, "beta": d.beta, "gamma": d.gamma}


def robustness_json(r: m.Robustness) -> dict[str, Any]:
    """Robustness -> the "robustness" object of optimizer-data.json (docs/model.md s10)."""
    data: dict[str, Any] = {"gamma": r.gamma, "maxDeviation": _deviation_json(r.default)}
    if r.deviations:
        data["models"] = [{"name": model, "acc": acc, "maxDeviation": _deviation_json(d)}
                          for model, acc, d in r.deviations]
    return data


def capacity_json(capacity: m.Capacity) -> dict[str, Any]:
    """Capacity -> capacity-data.json."""
    return {"count": [{"type": t, "count": c} for t, c in capacity.counts.items()]}


def system_sections(system: m.SystemData) -> dict[str, dict[str, Any]]:
    """SystemData -> the six files' contents, keyed like datafiles.FILES."""
    return {
        "accelerators": {"accelerators": [accelerator_json(a) for a in system.accelerators]},
        "capacity": capacity_json(system.capacity),
        "models": {"models": [model_perf_json(p) for p in system.models]},
        "service_classes": {"serviceClasses": [service_class_json(c) for c in system.service_classes]},
        "servers": {"servers": [server_json(s) for s in system.servers]},
        "optimizer": {"optimizer": settings_json(system.optimizer)},
    }


def solution_json(solution: m.Solution) -> dict[str, Any]:
    """Solution -> solution-data.json ({"allocations": {server: allocation}})."""
    return {"allocations": {name: allocation_json(a) for name, a in solution.allocations.items()}}
