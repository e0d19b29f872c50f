"""``inferno``: our control loop, through the production code paths, on the simulated cluster.

Every control period (INFERNO_CONTROL_PERIOD, 60 s) the controller's own cycle (services/controller/cycle.py
run_cycle, with its skip rules) runs over in-process clients instead of gRPC:
- collect: the Deployment as the collector's KubeSource would list it (labels, spec and ready replicas, its
  pods that are not being deleted) and the per-pod rates the collector's PromQL returns from the simulated
  Prometheus, aggregated by services/collector/aggregate.collect (completion rate as arrival rate, token
  averages, latencies; no completed request in the window -> the server is skipped, as in production);
- optimize: services/optimizer/solver.solve on the static data (sim/system.py) plus the collected server, with
  the optimizer service's solver defaults (INFERNO_SOLVER, INFERNO_SOLVER_TIME_LIMIT: exact CP-SAT, 10 s);
- actuate: services/actuator/plan.plan_deployment with the scale-down stabilization window
  (services/actuator/stabilize.ScaleDownWindow) fed exactly as services/actuator/kube.py feeds it, and the
  production defaults of the settings (services/runtime/config.Config: 300 s window, no per-cycle limit)
  unless the scenario overrides them.
The replicas the plan writes are what the simulator applies. The online tuner and the model-vs-reality checker are
not wired in: both are advisory by default (INFERNO_TUNER=advisory never changes a decision). An exception in
these clients is a simulator bug and is raised, not turned into a skipped cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from services.actuator.plan import DeploymentState, PlanSettings, plan_deployment
from services.actuator.stabilize import ScaleDownWindow
from services.collector import aggregate, forecast
from services.controller import cycle
from services.controller.fastpath import Expected, FastPath, FastPathSettings, Signals, expectations
from services.core import model as m
from services.optimizer.solver import SolverDefaults, solve
from services.runtime.config import Config
from sim.policies import ClusterView
from sim.scenario import Scenario
from sim.system import NAMESPACE, deployment_name, labels, static_data

PERCENTILE_KEYS = ("observed_ttft_ms_p90", "observed_itl_ms_p90", "predicted_ttft_ms_p90", "predicted_itl_ms_p90")
"""The cycle row's P90s kept per cycle (InfernoPolicy.observed_percentiles): the collector's, from vLLM's TTFT and
inter-token histograms over the window (as in production, sim/prometheus.py), and the optimizer's."""


def _loud(method: Callable[..., Any]) -> Callable[..., Any]:
    """Remember an exception of a client method (the cycle turns any into a skipped cycle; in the simulator it
    is a bug, which InfernoPolicy.decide raises)."""

    def wrapper(self: _SimClients, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            self.error = err
            raise

    return wrapper


class _SimClients:
    """The cycle's three clients, answering from the simulated cluster at one moment (no wire: in process)."""

    def __init__(self, policy: InfernoPolicy, view: ClusterView) -> None:
        self.policy = policy
        self.view = view
        self.written: int | None = None
        self.error: Exception | None = None

    @_loud
    def collect(self, static: m.SystemData, window: str = "") -> cycle.Reply[m.Collection]:
        view, policy = self.view, self.policy
        live = tuple(p for p in view.pods if not p.terminating)
        facts = aggregate.DeploymentFacts(policy.ref, policy.labels, view.spec_replicas, view.ready_replicas,
                                          tuple(aggregate.PodFacts(p.name, ready=p.ready) for p in live))
        window_s = policy.fast_window_s if policy.fast_cycle else policy.window_s  # a fast-path cycle reads
        rates = view.prometheus.rates([p.name for p in live], view.now_s, window_s)  # the short window
        found = aggregate.collect([facts], {(policy.ref.namespace, policy.ref.name): rates}, m.LoadSource.PROMETHEUS,
                                  static)
        if policy.forecast:
            found = replace(found, managed=tuple(policy.forecast_one(r, view) for r in found.managed))
        return cycle.Reply(found)

    @_loud
    def optimize(self, system: m.SystemData, collected: cycle.Reply[m.Collection]) -> cycle.Reply[cycle.Solved]:
        """As services/optimizer/servicer.OptimizerServicer.Optimize: solve with the service's solver defaults."""
        result = solve(system, self.policy.solver_defaults)
        return cycle.Reply(cycle.Solved(result.solution, {"solver": result.solver, "candidates": result.candidates}))

    @_loud
    def actuate(self, solved: cycle.Reply[cycle.Solved], collected: cycle.Reply[m.Collection],
                dry_run: bool, notices: Sequence[m.Notice] = ()) -> list[m.ActuationResult]:
        """As services/actuator/kube.KubeActuator._actuate_one: window hold, plan, record, write."""
        policy, now_s = self.policy, self.view.now_s
        allocations = solved.value.solution.allocations
        results = []
        for record in collected.value.managed:
            state = DeploymentState(replicas=self.view.spec_replicas, labels=policy.labels)
            key = (record.ref.namespace, record.ref.name)
            hold_at = policy.window.highest(key, now_s, state.replicas)
            change = plan_deployment(record.name, record.ref, state, allocations.get(record.name), record.server,
                                     policy.settings, hold_at, record.load_measured, record.ready_replicas)
            if change.hold_replicas is not None:
                policy.window.record(key, change.hold_replicas, now_s)
            if change.outcome is m.ActuationOutcome.CHANGED and not dry_run:
                policy.labels.update(change.labels)
                if change.scales:
                    self.written = change.replicas_to
            results.append(change.result(dry_run))
        return results


class InfernoPolicy:
    """The production cycle in the loop; ``forecast`` and ``fast_path`` (None = the production default,
    services/runtime/config.Config) switch issue 22's forecasting and fast path."""

    name = "inferno"

    def __init__(self, scenario: Scenario, forecast: bool | None = None, fast_path: bool | None = None,
                 name: str = "inferno") -> None:
        settings, defaults = scenario.policy_settings("inferno"), Config()
        self.name = name
        self.forecast = defaults.forecast if forecast is None else forecast
        self.fast_path = defaults.fast_path if fast_path is None else fast_path
        self.history_s = defaults.forecast_history_s
        self.startup_s = scenario.cluster.startup_s  # the start-up setting; the simulated pods all take it
        self.watcher = FastPath(FastPathSettings(
            defaults.fast_path_waiting_per_replica, defaults.fast_path_kv_cache_usage, defaults.fast_path_ratio,
            defaults.fast_path_cooldown_s))
        self.fast_window_s = max(defaults.fast_path_window_s, 2 * scenario.metrics.scrape_interval_s)
        self.expected: dict[str, Expected] = {}
        self.fast_cycles: list[tuple[float, str]] = []
        self._last_cycle_s = 0.0
        self.fast_cycle = False
        self.scenario = scenario
        self.period_s = scenario.control_period_s
        self.window_s = scenario.metrics.window_s
        self.static = static_data(scenario)
        self.labels = labels(scenario)
        self.ref = m.KubeRef(NAMESPACE, deployment_name(scenario), "uid-" + deployment_name(scenario))
        self.settings = PlanSettings(
            max_replica_change=int(settings.get("max_replica_change", defaults.max_replica_change)),
            scale_down_stabilization_s=float(settings.get("scale_down_stabilization_s",
                                                          defaults.scale_down_stabilization_s)))
        self.window = ScaleDownWindow(self.settings.scale_down_stabilization_s)
        self.solver_defaults = SolverDefaults(m.SolverKind(defaults.solver), defaults.solver_time_limit_s)
        self.records: list[cycle.CycleRecord] = []
        self.observed_rates: list[tuple[float, float | None]] = []
        self.observed_percentiles: list[tuple[float, dict[str, float | None]]] = []
        self._cycles = 0
        self.control_period_s = self.period_s
        if self.fast_path:
            self.period_s = defaults.fast_path_interval_s

    def initial_replicas(self) -> int:
        """The scenario's initial replicas."""
        return self.scenario.cluster.initial_replicas

    def decide(self, view: ClusterView) -> int | None:
        """One control cycle when a control period has passed (or, with the fast path, when the watcher asks for
        one); the replicas it wrote, or None when it wrote none (skipped, unchanged or no cycle)."""
        self.fast_cycle = False
        if view.now_s - self._last_cycle_s < self.control_period_s - 1e-6:
            why = self.watcher.check(view.now_s, {self.scenario.server.name: self._signals(view)}, self.expected)
            if not why:
                return None
            self.fast_cycles.append((view.now_s, why))
            self.fast_cycle = True
        self._last_cycle_s = view.now_s
        self._cycles += 1
        clients = _SimClients(self, view)
        record = cycle.run_cycle(self._cycles, f"t+{view.now_s:.0f}s", lambda: (self.static, self.static.capacity),
                                 clients, lambda: view.now_s)
        if clients.error is not None:
            raise RuntimeError(f"inferno cycle at t={view.now_s:.0f} s: {record.skip_reason}") from clients.error
        self.records.append(record)
        rate = record.rows[0].arrival_rate_rpm if record.rows else None
        self.observed_rates.append((view.now_s, rate / 60.0 if rate is not None else None))
        row = record.rows[0] if record.rows else None
        self.observed_percentiles.append((view.now_s, {key: getattr(row, key, None) for key in PERCENTILE_KEYS}))
        self.expected = expectations(record.rows)
        return clients.written

    def _signals(self, view: ClusterView) -> Signals:
        """The saturation signals the collector's watch reads: its aggregation over the short window."""
        live = [p.name for p in view.pods if not p.terminating]
        measured = aggregate.measure(list(view.prometheus.rates(live, view.now_s, self.fast_window_s).values()))
        return Signals(measured.requests_waiting, measured.kv_cache_usage, measured.ttft_ms, view.ready_replicas,
                       view.spec_replicas)

    def forecast_one(self, managed: m.ManagedServer, view: ClusterView) -> m.ManagedServer:
        """The collector's forecast step on the simulated Prometheus: one-minute arrival rates of the Deployment's
        pods (those gone included, as a range query sees them) over the history, then forecast.forecast_server."""
        step = self.window_s
        points = max(int(self.history_s // step), 1)
        pods = view.prometheus.pods()
        history = []
        for k in range(points, 0, -1):
            at_s = view.now_s - k * step
            if at_s < self.window_s:
                continue  # before the first full window: a range query has no point there
            measured = aggregate.measure(list(view.prometheus.rates(pods, at_s, self.window_s).values()))
            history.append(forecast.arrival_rpm(measured.arrival_rate_rpm or 0.0, measured.in_system_growth_rpm))
        return forecast.forecast_server(managed, history, step, self.startup_s + self.control_period_s,
                                        self.startup_s + self.control_period_s)
