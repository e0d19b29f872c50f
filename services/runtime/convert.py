"""The only mapping between protos (package inferno.v1) and the data model (services.core.model).

Every ``*_from_proto`` validates what the wire cannot: enum strings and negative counts raise
InvalidInputError naming the field and value (names and values shortened, services.core.bounds.short, so an
error detail stays far below gRPC's header limit), so servicers answer INVALID_ARGUMENT. Physical bounds of
every figure are checked on the model by services.core.bounds.check_system (docs/model.md s1).
"""

from __future__ import annotations

from collections.abc import Mapping

from proto import actuator_pb2, collector_pb2, optimizer_pb2, types_pb2
from services.core import model as m
from services.core.bounds import short, short_name
from services.core.errors import InvalidInputError
from services.core.validate import validate_system


def _non_negative(value: float, field: str) -> float:
    if value < 0 or value != value:
        raise InvalidInputError(f"{field} must be a non-negative number, got {short(value)}")
    return value


def load_to_proto(load: m.Load) -> types_pb2.Load:
    """Load -> proto."""
    return types_pb2.Load(arrival_rate_rpm=load.arrival_rate_rpm, avg_in_tokens=load.avg_in_tokens,
                          avg_out_tokens=load.avg_out_tokens, out_tokens_c2=load.out_tokens_c2)


def load_from_proto(msg: types_pb2.Load, field: str = "load") -> m.Load:
    """Proto -> Load; negative figures raise InvalidInputError naming ``field``."""
    return m.Load(
        arrival_rate_rpm=_non_negative(msg.arrival_rate_rpm, f"{field}.arrival_rate_rpm"),
        avg_in_tokens=_non_negative(msg.avg_in_tokens, f"{field}.avg_in_tokens"),
        avg_out_tokens=_non_negative(msg.avg_out_tokens, f"{field}.avg_out_tokens"),
        out_tokens_c2=(_non_negative(msg.out_tokens_c2, f"{field}.out_tokens_c2")
                       if msg.HasField("out_tokens_c2") else None),
    )


_PREDICTED_PERCENTILES = tuple(f"{metric}_ms_p{q}" for metric in ("ttft", "itl") for q in m.SLO_PERCENTILES)
"""Allocation's predicted-percentile fields, named alike in the proto."""


def allocation_to_proto(alloc: m.Allocation) -> types_pb2.Allocation:
    """Allocation -> proto."""
    return types_pb2.Allocation(
        accelerator=alloc.accelerator, num_replicas=alloc.num_replicas, max_batch=alloc.max_batch,
        cost_per_hour=alloc.cost_per_hour, itl_ms=alloc.itl_ms, ttft_ms=alloc.ttft_ms,
        load=load_to_proto(alloc.load), max_queue=alloc.max_queue, saturated=alloc.saturated,
        unserved_rate_rpm=alloc.unserved_rate_rpm, **{name: getattr(alloc, name) for name in _PREDICTED_PERCENTILES},
    )


def allocation_from_proto(msg: types_pb2.Allocation, field: str = "allocation") -> m.Allocation:
    """Proto -> Allocation; negative replicas, batch or cost raise InvalidInputError naming ``field``."""
    return m.Allocation(
        accelerator=msg.accelerator,
        num_replicas=int(_non_negative(msg.num_replicas, f"{field}.num_replicas")),
        max_batch=int(_non_negative(msg.max_batch, f"{field}.max_batch")),
        cost_per_hour=_non_negative(msg.cost_per_hour, f"{field}.cost_per_hour"),
        itl_ms=msg.itl_ms, ttft_ms=msg.ttft_ms, load=load_from_proto(msg.load, f"{field}.load"),
        max_queue=int(_non_negative(msg.max_queue, f"{field}.max_queue")), saturated=msg.saturated,
        unserved_rate_rpm=msg.unserved_rate_rpm,
        **{name: _non_negative(getattr(msg, name), f"{field}.{name}") for name in _PREDICTED_PERCENTILES},
    )


_OBSERVED_FIELDS = ("itl_ms", "ttft_ms", "e2e_ms", "requests_running", "requests_waiting", "kv_cache_usage",
                    "ready_replicas", "measured_rate_rpm", "forecast_rpm", "forecast_lower_rpm",
                    "forecast_upper_rpm", "forecast_horizon_s", "in_system_growth_rpm",
                    *(f"{metric}_ms_p{q}" for metric in ("ttft", "itl") for q in m.SLO_PERCENTILES))


def observed_to_proto(observed: m.ObservedMetrics) -> types_pb2.ObservedMetrics:
    """ObservedMetrics -> proto (None figures stay unset)."""
    values = {name: getattr(observed, name) for name in _OBSERVED_FIELDS if getattr(observed, name) is not None}
    return types_pb2.ObservedMetrics(source=observed.source, forecast_method=observed.forecast_method,
                                     forecast_rising=observed.forecast_rising, **values)


def observed_from_proto(msg: types_pb2.ObservedMetrics) -> m.ObservedMetrics:
    """Proto -> ObservedMetrics (unset figures become None)."""
    values = {name: getattr(msg, name) if msg.HasField(name) else None for name in _OBSERVED_FIELDS}
    return m.ObservedMetrics(source=msg.source, forecast_method=msg.forecast_method,
                             forecast_rising=msg.forecast_rising, **values)


def server_to_proto(server: m.Server) -> types_pb2.Server:
    """Server -> proto."""
    msg = types_pb2.Server(
        name=server.name, model=server.model, keep_accelerator=server.keep_accelerator,
        min_num_replicas=server.min_replicas, max_batch_size=server.max_batch_size,
        max_queue_size=server.max_queue_size, current_alloc=allocation_to_proto(server.current),
    )
    setattr(msg, "class", server.service_class)
    if server.desired is not None:
        msg.desired_alloc.CopyFrom(allocation_to_proto(server.desired))
    if server.observed is not None:
        msg.observed.CopyFrom(observed_to_proto(server.observed))
    return msg


def server_from_proto(msg: types_pb2.Server, field: str = "server") -> m.Server:
    """Proto -> Server; an empty name or negative count raises InvalidInputError naming ``field``."""
    if not msg.name:
        raise InvalidInputError(f"{field}.name must not be empty")
    field = f"{field}[{short_name(msg.name)}]"
    return m.Server(
        name=msg.name, service_class=getattr(msg, "class") or m.DEFAULT_CLASS, model=msg.model,
        keep_accelerator=msg.keep_accelerator,
        min_replicas=int(_non_negative(msg.min_num_replicas, f"{field}.min_num_replicas")),
        max_batch_size=int(_non_negative(msg.max_batch_size, f"{field}.max_batch_size")),
        max_queue_size=int(_non_negative(msg.max_queue_size, f"{field}.max_queue_size")),
        current=allocation_from_proto(msg.current_alloc, f"{field}.current_alloc"),
        desired=allocation_from_proto(msg.desired_alloc, f"{field}.desired_alloc")
        if msg.HasField("desired_alloc") else None,
        observed=observed_from_proto(msg.observed) if msg.HasField("observed") else None,
    )


def accelerator_to_proto(acc: m.Accelerator) -> types_pb2.Accelerator:
    """Accelerator -> proto."""
    power = types_pb2.PowerProfile(idle_w=acc.power.idle_w, full_w=acc.power.full_w,
                                   mid_power_w=acc.power.mid_power_w, mid_util=acc.power.mid_util)
    return types_pb2.Accelerator(name=acc.name, type=acc.type, multiplicity=acc.multiplicity,
                                 mem_size_gb=acc.mem_size_gb, mem_bw_gbps=acc.mem_bw_gbps, power=power,
                                 cost_per_hour=acc.cost_per_hour)


def accelerator_from_proto(msg: types_pb2.Accelerator, field: str = "accelerator") -> m.Accelerator:
    """Proto -> Accelerator; negative cost or multiplicity raises InvalidInputError naming ``field``."""
    field = f"{field}[{short_name(msg.name)}]"
    return m.Accelerator(
        name=msg.name, type=msg.type or msg.name,
        multiplicity=int(_non_negative(msg.multiplicity, f"{field}.multiplicity")) or 1,
        mem_size_gb=msg.mem_size_gb, mem_bw_gbps=msg.mem_bw_gbps,
        power=m.PowerProfile(msg.power.idle_w, msg.power.full_w, msg.power.mid_power_w, msg.power.mid_util),
        cost_per_hour=_non_negative(msg.cost_per_hour, f"{field}.cost_per_hour"),
    )


def model_perf_to_proto(perf: m.ModelPerf) -> types_pb2.ModelPerf:
    """ModelPerf -> proto."""
    parms = types_pb2.PerfParms(alpha_ms=perf.perf.alpha_ms, beta_ms=perf.perf.beta_ms,
                                gamma_ms=perf.perf.gamma_ms, ttft_overhead_ms=perf.perf.ttft_overhead_ms)
    return types_pb2.ModelPerf(name=perf.model, acc=perf.accelerator, acc_count=perf.acc_count,
                               max_batch_size=perf.max_batch_size, at_tokens=perf.at_tokens, perf_parms=parms)


def model_perf_from_proto(msg: types_pb2.ModelPerf, field: str = "model") -> m.ModelPerf:
    """Proto -> ModelPerf; negative figures raise InvalidInputError naming ``field``."""
    field = f"{field}[{short_name(msg.name)}/{short_name(msg.acc)}]"
    parms = msg.perf_parms
    return m.ModelPerf(
        model=msg.name, accelerator=msg.acc, acc_count=msg.acc_count,
        max_batch_size=int(_non_negative(msg.max_batch_size, f"{field}.max_batch_size")),
        at_tokens=int(_non_negative(msg.at_tokens, f"{field}.at_tokens")),
        perf=m.PerfParms(_non_negative(parms.alpha_ms, f"{field}.perf_parms.alpha_ms"),
                         _non_negative(parms.beta_ms, f"{field}.perf_parms.beta_ms"),
                         _non_negative(parms.gamma_ms, f"{field}.perf_parms.gamma_ms"),
                         _non_negative(parms.ttft_overhead_ms, f"{field}.perf_parms.ttft_overhead_ms")),
    )


_PERCENTILE_FIELDS = tuple(m.percentile_field(metric, q) for metric in ("itl", "ttft") for q in m.SLO_PERCENTILES)
"""ModelTarget's percentile SLO fields, named alike in the proto."""


def service_class_to_proto(sc: m.ServiceClass) -> types_pb2.ServiceClass:
    """ServiceClass -> proto."""
    targets = [types_pb2.ModelTarget(model=t.model, slo_itl_ms=t.slo_itl_ms, slo_ttft_ms=t.slo_ttft_ms,
                                     slo_tps=t.slo_tps, **{name: getattr(t, name) for name in _PERCENTILE_FIELDS})
               for t in sc.targets]
    return types_pb2.ServiceClass(name=sc.name, priority=sc.priority, model_targets=targets)


def service_class_from_proto(msg: types_pb2.ServiceClass, field: str = "service_class") -> m.ServiceClass:
    """Proto -> ServiceClass; negative SLOs raise InvalidInputError naming ``field``."""
    field = f"{field}[{short_name(msg.name)}]"
    targets = tuple(
        m.ModelTarget(model=t.model,
                      slo_itl_ms=_non_negative(t.slo_itl_ms, f"{field}.{short_name(t.model)}.slo_itl_ms"),
                      slo_ttft_ms=_non_negative(t.slo_ttft_ms, f"{field}.{short_name(t.model)}.slo_ttft_ms"),
                      slo_tps=_non_negative(t.slo_tps, f"{field}.{short_name(t.model)}.slo_tps"),
                      **{name: _non_negative(getattr(t, name), f"{field}.{short_name(t.model)}.{name}")
                         for name in _PERCENTILE_FIELDS})
        for t in msg.model_targets
    )
    return m.ServiceClass(name=msg.name, priority=msg.priority, targets=targets)


def capacity_to_proto(capacity: m.Capacity) -> types_pb2.Capacity:
    """Capacity -> proto (entries sorted by type)."""
    return types_pb2.Capacity(count=[types_pb2.CapacityEntry(type=t, count=c)
                                     for t, c in sorted(capacity.counts.items())])


def capacity_from_proto(msg: types_pb2.Capacity, field: str = "capacity") -> m.Capacity:
    """Proto -> Capacity; a negative count raises InvalidInputError naming the type."""
    return m.Capacity({e.type: int(_non_negative(e.count, f"{field}.count[{short_name(e.type)}]")) for e in msg.count})


def _enum(enum_type: type, value: str, default: object, field: str) -> object:
    if not value:
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(v.value for v in enum_type)
        raise InvalidInputError(f"{field} must be one of {allowed}, got {short(value)}") from None


def settings_to_proto(s: m.OptimizerSettings) -> types_pb2.OptimizerSettings:
    """OptimizerSettings -> proto."""
    return types_pb2.OptimizerSettings(
        unlimited=s.unlimited, heterogeneous=s.heterogeneous, milp_solver=s.milp_solver, use_cplex=s.use_cplex,
        delayed_best_effort=s.delayed_best_effort, saturation_policy=s.saturation_policy.value,
        service_model=s.service_model.value, blocking_bound=s.blocking_bound, time_limit_s=s.time_limit_s,
        output_c2=s.output_c2, token_budget=s.token_budget,
        solver=s.solver.value if s.solver is not None else "",
        robustness=None if s.robustness is None else robustness_to_proto(s.robustness))


def _deviation_to_proto(d: m.Deviation) -> types_pb2.Deviation:
    return types_pb2.Deviation(alpha=d.alpha, beta=d.beta, gamma=d.gamma)


def _deviation_from_proto(msg: types_pb2.Deviation, field: str) -> m.Deviation:
    return m.Deviation(_non_negative(msg.alpha, f"{field}.alpha"), _non_negative(msg.beta, f"{field}.beta"),
                       _non_negative(msg.gamma, f"{field}.gamma"))


def robustness_to_proto(r: m.Robustness) -> types_pb2.Robustness:
    """Robustness -> proto."""
    return types_pb2.Robustness(
        gamma=r.gamma, default_deviation=_deviation_to_proto(r.default),
        deviations=[types_pb2.PairDeviation(model=model, accelerator=acc, deviation=_deviation_to_proto(d))
                    for model, acc, d in r.deviations])


def robustness_from_proto(msg: types_pb2.Robustness, field: str = "robustness") -> m.Robustness:
    """Proto -> Robustness; negative figures and duplicate (model, accelerator) pairs raise InvalidInputError."""
    pairs: list[tuple[str, str, m.Deviation]] = []
    for i, row in enumerate(msg.deviations):
        if any(model == row.model and acc == row.accelerator for model, acc, _ in pairs):
            raise InvalidInputError(f"{field}.deviations[{i}]: duplicate model/accelerator "
                                    f"{short_name(row.model)}/{short_name(row.accelerator)}")
        pairs.append((row.model, row.accelerator, _deviation_from_proto(row.deviation, f"{field}.deviations[{i}]")))
    return m.Robustness(gamma=_non_negative(msg.gamma, f"{field}.gamma"),
                        default=_deviation_from_proto(msg.default_deviation, f"{field}.default_deviation"),
                        deviations=tuple(pairs))


def settings_from_proto(msg: types_pb2.OptimizerSettings, field: str = "optimizer") -> m.OptimizerSettings:
    """Proto -> OptimizerSettings; unknown policy or model names raise InvalidInputError."""
    defaults = m.OptimizerSettings()
    return m.OptimizerSettings(
        unlimited=msg.unlimited, heterogeneous=msg.heterogeneous, milp_solver=msg.milp_solver,
        use_cplex=msg.use_cplex, delayed_best_effort=msg.delayed_best_effort,
        saturation_policy=_enum(m.SaturationPolicy, msg.saturation_policy, defaults.saturation_policy,
                                f"{field}.saturation_policy"),
        service_model=_enum(m.ServiceModel, msg.service_model, defaults.service_model,
                            f"{field}.service_model"),
        blocking_bound=_non_negative(msg.blocking_bound, f"{field}.blocking_bound"),
        time_limit_s=_non_negative(msg.time_limit_s, f"{field}.time_limit_s") or defaults.time_limit_s,
        output_c2=(_non_negative(msg.output_c2, f"{field}.output_c2") if msg.HasField("output_c2")
                   else defaults.output_c2),
        token_budget=int(_non_negative(msg.token_budget, f"{field}.token_budget")) or defaults.token_budget,
        solver=_enum(m.SolverKind, msg.solver, None, f"{field}.solver"),
        robustness=(robustness_from_proto(msg.robustness, f"{field}.robustness") if msg.HasField("robustness")
                    else None),
    )


def system_to_proto(system: m.SystemData) -> types_pb2.SystemData:
    """SystemData -> proto."""
    return types_pb2.SystemData(
        accelerators=[accelerator_to_proto(a) for a in system.accelerators],
        models=[model_perf_to_proto(p) for p in system.models],
        service_classes=[service_class_to_proto(c) for c in system.service_classes],
        servers=[server_to_proto(s) for s in system.servers],
        optimizer=settings_to_proto(system.optimizer), capacity=capacity_to_proto(system.capacity))


def system_from_proto(msg: types_pb2.SystemData, field: str = "system") -> m.SystemData:
    """Proto -> SystemData, checked by the one set of system rules (services.core.validate.validate_system:
    infinity, duplicates, unknown accelerators, bounds); bad values raise InvalidInputError naming the field."""
    system = m.SystemData(
        accelerators=tuple(accelerator_from_proto(a, f"{field}.accelerators") for a in msg.accelerators),
        models=tuple(model_perf_from_proto(p, f"{field}.models") for p in msg.models),
        service_classes=tuple(service_class_from_proto(c, f"{field}.service_classes")
                              for c in msg.service_classes),
        servers=tuple(server_from_proto(s, f"{field}.servers") for s in msg.servers),
        optimizer=settings_from_proto(msg.optimizer, f"{field}.optimizer"),
        capacity=capacity_from_proto(msg.capacity, f"{field}.capacity"))
    validate_system(system)
    return system


def solution_to_proto(solution: m.Solution,
                      stats: optimizer_pb2.OptimizeStats | None = None,
                      robust: optimizer_pb2.RobustReport | None = None) -> optimizer_pb2.OptimizeResponse:
    """Solution (and optional stats and robust report) -> OptimizeResponse; rows sorted by server name."""
    return optimizer_pb2.OptimizeResponse(
        allocations=[optimizer_pb2.ServerAllocation(server_name=name, allocation=allocation_to_proto(a))
                     for name, a in solution.allocations.items()],
        unallocated=[optimizer_pb2.Unallocated(server_name=name, reason=reason)
                     for name, reason in solution.unallocated.items()],
        stats=stats, robustness=robust)


def robust_report_to_proto(gamma: float, cost_per_hour: float, nominal_cost_per_hour: float, allocated: int,
                           nominal_allocated: int, worst: dict[str, tuple[float, float, int]]
                           ) -> optimizer_pb2.RobustReport:
    """The robust report's figures -> proto; ``worst`` maps a server to (ITL ms, TTFT ms, nominal replicas)."""
    return optimizer_pb2.RobustReport(
        gamma=gamma, cost_per_hour=cost_per_hour, nominal_cost_per_hour=nominal_cost_per_hour,
        allocated=allocated, nominal_allocated=nominal_allocated,
        worst=[optimizer_pb2.WorstCase(server_name=name, itl_ms=itl, ttft_ms=ttft, nominal_replicas=n)
               for name, (itl, ttft, n) in sorted(worst.items())])


def allocations_from_proto(rows: list[optimizer_pb2.ServerAllocation]) -> dict[str, m.Allocation]:
    """ServerAllocation rows -> {server name: Allocation}; duplicate names raise InvalidInputError."""
    allocations: dict[str, m.Allocation] = {}
    for row in rows:
        if not row.server_name or row.server_name in allocations:
            raise InvalidInputError(f"allocations: server_name {short(row.server_name)} is empty or repeated")
        allocations[row.server_name] = allocation_from_proto(row.allocation,
                                                             f"allocations[{short_name(row.server_name)}]")
    return allocations


def predictions_to_proto(predictions: Mapping[str, m.Prediction]) -> list[optimizer_pb2.CurrentPrediction]:
    """Predictions at the current allocations -> proto rows, sorted by server name."""
    return [optimizer_pb2.CurrentPrediction(server_name=p.server_name, accelerator=p.accelerator,
                                            num_replicas=p.num_replicas, max_batch=p.max_batch, itl_ms=p.itl_ms,
                                            ttft_ms=p.ttft_ms, saturated=p.saturated)
            for _, p in sorted(predictions.items())]


def predictions_from_proto(rows: list[optimizer_pb2.CurrentPrediction]) -> dict[str, m.Prediction]:
    """CurrentPrediction rows -> {server name: Prediction}."""
    return {r.server_name: m.Prediction(r.server_name, r.accelerator, r.num_replicas, r.max_batch, r.itl_ms,
                                        r.ttft_ms, r.saturated) for r in rows}


def notices_to_proto(notices: list[m.Notice]) -> list[actuator_pb2.ServerNotice]:
    """Notices -> proto."""
    return [actuator_pb2.ServerNotice(server_name=n.server_name, type=n.type, reason=n.reason, message=n.message)
            for n in notices]


def notices_from_proto(rows: list[actuator_pb2.ServerNotice]) -> list[m.Notice]:
    """ServerNotice rows -> Notices; a type other than Normal or Warning, or an empty reason, raises
    InvalidInputError."""
    notices = []
    for i, row in enumerate(rows):
        if row.type not in ("Normal", "Warning") or not row.reason.isalnum():
            raise InvalidInputError(f"notices[{i}]: type must be Normal or Warning and reason CamelCase, got "
                                    f"{short(row.type)} {short(row.reason)}")
        notices.append(m.Notice(row.server_name, row.type, row.reason, row.message))
    return notices


def solution_from_proto(msg: optimizer_pb2.OptimizeResponse) -> m.Solution:
    """OptimizeResponse -> Solution."""
    return m.Solution(allocations=allocations_from_proto(list(msg.allocations)),
                      unallocated={u.server_name: u.reason for u in msg.unallocated})


def kube_ref_to_proto(ref: m.KubeRef) -> types_pb2.KubeRef:
    """KubeRef -> proto."""
    return types_pb2.KubeRef(namespace=ref.namespace, name=ref.name, uid=ref.uid)


def kube_ref_from_proto(msg: types_pb2.KubeRef, field: str = "ref") -> m.KubeRef:
    """Proto -> KubeRef; an empty namespace or name raises InvalidInputError naming ``field``."""
    if not msg.namespace or not msg.name:
        raise InvalidInputError(f"{field} needs a namespace and a name, got {short(msg.namespace)}/{short(msg.name)}")
    return m.KubeRef(namespace=msg.namespace, name=msg.name, uid=msg.uid)


def actuation_result_to_proto(result: m.ActuationResult) -> actuator_pb2.ActuationResult:
    """ActuationResult -> proto."""
    return actuator_pb2.ActuationResult(
        server_name=result.server_name, ref=kube_ref_to_proto(result.ref),
        outcome=actuator_pb2.ActuationResult.Outcome.Value(result.outcome.name), reason=result.reason,
        replicas_from=result.replicas_from, replicas_to=result.replicas_to, accelerator=result.accelerator,
        dry_run=result.dry_run)


def actuation_result_from_proto(msg: actuator_pb2.ActuationResult, field: str = "results") -> m.ActuationResult:
    """Proto -> ActuationResult; an unspecified outcome raises InvalidInputError naming ``field``."""
    if msg.outcome == actuator_pb2.ActuationResult.Outcome.OUTCOME_UNSPECIFIED:
        raise InvalidInputError(f"{field}[{short_name(msg.server_name)}].outcome must be set")
    outcome = m.ActuationOutcome[actuator_pb2.ActuationResult.Outcome.Name(msg.outcome)]
    return m.ActuationResult(
        server_name=msg.server_name, ref=m.KubeRef(msg.ref.namespace, msg.ref.name, msg.ref.uid), outcome=outcome,
        reason=msg.reason, replicas_from=msg.replicas_from, replicas_to=msg.replicas_to,
        accelerator=msg.accelerator, dry_run=msg.dry_run)


def managed_server_to_proto(managed: m.ManagedServer) -> types_pb2.ManagedServer:
    """ManagedServer -> proto."""
    return types_pb2.ManagedServer(server=server_to_proto(managed.server), ref=kube_ref_to_proto(managed.ref),
                                   spec_replicas=managed.spec_replicas, ready_replicas=managed.ready_replicas,
                                   load_measured=managed.load_measured)


def managed_servers_from_proto(rows: list[types_pb2.ManagedServer],
                               field: str = "managed") -> tuple[m.ManagedServer, ...]:
    """ManagedServer rows -> records; a missing server or ref, negative counts or a repeated server name raise
    InvalidInputError naming the field (``managed[i].server.name``, ``managed[i].ref``, ...)."""
    records: list[m.ManagedServer] = []
    for i, row in enumerate(rows):
        where = f"{field}[{i}]"
        server = server_from_proto(row.server, f"{where}.server")
        if any(r.name == server.name for r in records):
            raise InvalidInputError(f"{where}.server.name {server.name!r} is repeated")
        records.append(m.ManagedServer(
            server=server, ref=kube_ref_from_proto(row.ref, f"{where}.ref"),
            spec_replicas=int(_non_negative(row.spec_replicas, f"{where}.spec_replicas")),
            ready_replicas=int(_non_negative(row.ready_replicas, f"{where}.ready_replicas")),
            load_measured=row.load_measured))
    return tuple(records)


def collection_to_proto(collection: m.Collection) -> collector_pb2.CollectResponse:
    """Collection -> CollectResponse (the same fields)."""
    return collector_pb2.CollectResponse(
        managed=[managed_server_to_proto(r) for r in collection.managed], warnings=list(collection.warnings),
        capacity=capacity_to_proto(collection.capacity))


def collection_from_proto(msg: collector_pb2.CollectResponse) -> m.Collection:
    """CollectResponse -> Collection; bad values raise InvalidInputError naming the field."""
    return m.Collection(managed=managed_servers_from_proto(list(msg.managed)), warnings=tuple(msg.warnings),
                        capacity=capacity_from_proto(msg.capacity))
