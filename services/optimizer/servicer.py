"""OptimizerService over gRPC: proto -> model (services.runtime.convert), solve, model -> proto. No arithmetic here."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from proto import optimizer_pb2, optimizer_pb2_grpc
from services.optimizer.current import predict_current
from services.optimizer.solver import DEFAULTS, SolverDefaults, SolveStats, solve
from services.runtime import convert
from services.runtime.logs import get_logger

SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name
_log = get_logger("optimizer")


def stats_to_proto(stats: SolveStats, solve_time_ms: float, candidates: int,
                   total_cost_per_hour: float) -> optimizer_pb2.OptimizeStats:
    """SolveStats and the RPC's figures -> OptimizeStats (fields not set stay absent)."""
    figures = {key: value for key, value in stats.as_dict().items() if key != "served_by_priority"}  # those set
    return optimizer_pb2.OptimizeStats(solve_time_ms=solve_time_ms, candidates=candidates,
                                       total_cost_per_hour=total_cost_per_hour,
                                       served_by_priority=dict(stats.served_by_priority), **figures)


class OptimizerServicer(optimizer_pb2_grpc.OptimizerServiceServicer):
    """Optimize: size every server and allocate; ``now`` (seconds, monotonic) times the solve for the stats;
    ``defaults`` are the solver and time limit that apply when the request's settings choose none."""

    def __init__(self, now: Callable[[], float] = time.perf_counter,
                 defaults: SolverDefaults = DEFAULTS) -> None:
        self._now = now
        self._defaults = defaults

    def Optimize(self, request: optimizer_pb2.OptimizeRequest,  # noqa: N802 - gRPC method name
                 context: grpc.ServicerContext) -> optimizer_pb2.OptimizeResponse:
        """Allocations sorted by server, the unallocated with reasons, stats, and what the model predicts for
        each server as it runs now (services/optimizer/current.py). Bad input -> INVALID_ARGUMENT."""
        started = self._now()
        system = convert.system_from_proto(request.system)
        result = solve(system, self._defaults)
        solution = result.solution
        stats = stats_to_proto(result.stats, (self._now() - started) * 1000.0, result.candidates,
                               solution.total_cost_per_hour)
        _log.info("optimization_completed", servers=len(system.servers), allocated=len(solution.allocations),
                  unallocated=len(solution.unallocated), candidates=result.candidates, solver=result.solver,
                  outcome=result.stats.outcome, gap=result.stats.gap,
                  total_cost_per_hour=round(solution.total_cost_per_hour, 3),
                  duration_ms=round(stats.solve_time_ms, 1))
        robust = None
        if result.robust is not None:
            r = result.robust
            robust = convert.robust_report_to_proto(
                r.gamma, r.cost_per_hour, r.nominal_cost_per_hour, r.allocated, r.nominal_allocated,
                {name: (w.itl_ms, w.ttft_ms, w.nominal_replicas, dict(w.percentiles)) for name, w in r.worst.items()})
        reply = convert.solution_to_proto(solution, stats, robust)
        try:
            reply.current.extend(convert.predictions_to_proto(predict_current(system, solution.allocations)))
        except (ValueError, ArithmeticError) as err:  # advisory figures: never fail the allocation for them
            _log.warning("current_prediction_failed", error=str(err)[:300])
        return reply


def register(servicer: OptimizerServicer) -> Callable[[grpc.Server], None]:
    """A ``register`` callback for services.runtime.grpcserve that adds ``servicer`` to a server."""
    return lambda server: optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(servicer, server)
