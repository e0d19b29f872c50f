"""The discrete-event simulation of one scenario under one policy, in simulated time.

Events (a heap, earliest first; at equal times: replica events, pods becoming Ready, arrivals, scrapes, policy
calls): each replica's next change (the end of the engine iteration that finishes a request or changes the batch,
sim/replica.py; steady decode stretches in between are skipped, sim/fastcore.py), arrivals (routed at once to the Ready
pod with the fewest outstanding requests, ties to the oldest pod; held at the gateway while no pod is Ready),
pods turning Ready ``startup_s`` after creation, Prometheus scrapes of every running pod every
``scrape_interval_s``, and the policy every ``period_s``. Nothing happens between events, so time jumps from
one to the next. Scaling down deletes pods as a ReplicaSet does (not-Ready pods first, then the most recently
Ready); a deleted pod leaves the router at once and drains: it finishes what it holds, then is gone.
GPU time counts from a pod's creation to its end (or the end of the load), times the accelerators per replica.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from emulator.enginecore import EngineParams
from sim.arrivals import Arrival
from sim.policies import ClusterView, PodView, Policy
from sim.prometheus import Prometheus
from sim.replica import SimReplica
from sim.scenario import Scenario

_ITERATION, _READY, _ARRIVAL, _SCRAPE, _CONTROL = range(5)
_SCRAPE_OFFSET = 1.0 / 3.0
"""Scrapes happen at (k + 1/3) x interval, so they never coincide with the policy's period boundaries."""


@dataclass(slots=True)
class RequestRecord:
    """One request's fate: arrival (s), tokens, TTFT and mean ITL (s) once finished; dropped if never served."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float | None = None
    itl_s: float | None = None
    finished_s: float | None = None
    dropped: bool = False


@dataclass(slots=True)
class _Pod:
    name: str
    index: int
    created_s: float
    replica: SimReplica
    version: int = 0
    ready: bool = False
    terminating: bool = False
    gone_s: float | None = None


@dataclass(slots=True)
class RunResult:
    """Everything one (scenario, policy) run produced."""

    policy: str
    requests: list[RequestRecord]
    gpu_hours: float
    scale_events: int
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(time s, spec replicas, ready replicas) at every change."""
    decisions: list[tuple[float, int]] = field(default_factory=list)
    """(time s, desired replicas) of every policy call that answered a count."""
    simulated_s: float = 0.0
    observed_rates: list[tuple[float, float | None]] = field(default_factory=list)
    """(time s, arrival rate req/s the policy's collector measured; None: none) per call, for policies that
    measure one (inferno)."""
    observed_percentiles: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)
    """(time s, {"observed_ttft_ms_p90": .., ...}) per cycle, for policies whose collector reads vLLM's latency
    histograms (inferno; sim/policies/inferno.PERCENTILE_KEYS)."""


def engine_params(scenario: Scenario) -> EngineParams:
    """The engine parameters of the scenario's server."""
    server = scenario.server
    return EngineParams(server.perf.alpha_ms, server.perf.beta_ms, server.perf.gamma_ms,
                        max_num_seqs=server.max_num_seqs, kv_cache_tokens=server.kv_cache_tokens,
                        max_num_batched_tokens=server.max_num_batched_tokens)


class Simulation:
    """One run of ``scenario`` with ``policy`` on ``arrivals``; call run() once."""

    def __init__(self, scenario: Scenario, policy: Policy, arrivals: tuple[Arrival, ...]) -> None:
        self.scenario = scenario
        self.policy = policy
        self.arrivals = arrivals
        self.prometheus = Prometheus()
        self.params = engine_params(scenario)
        self.horizon_s = scenario.duration_s
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._pods: list[_Pod] = []
        self._names = itertools.count()
        self._gateway: deque[RequestRecord] = deque()
        self._records: list[RequestRecord] = []
        self._gpu_s = 0.0
        self._scale_events = 0
        self._timeline: list[tuple[float, int, int]] = []
        self._decisions: list[tuple[float, int]] = []
        self._now = 0.0
        self._settled = 0
        """Requests finished or dropped so far."""

    def _push(self, t_s: float, kind: int, payload: object = None) -> None:
        heapq.heappush(self._heap, (t_s, kind, next(self._seq), payload))

    @property
    def _live(self) -> list[_Pod]:
        return [p for p in self._pods if not p.terminating]

    def run(self) -> RunResult:
        """Simulate until the load has ended and every request finished (or ``drain_limit_s`` passed)."""
        for _ in range(self._clamp(self.policy.initial_replicas())):
            self._create_pod(0.0, ready=True)
        self._note()
        if self.arrivals:
            self._push(self.arrivals[0].at_s, _ARRIVAL, 0)
        interval = self.scenario.metrics.scrape_interval_s
        self._push(interval * _SCRAPE_OFFSET, _SCRAPE)
        self._push(self.policy.period_s, _CONTROL)
        limit = self.horizon_s + self.scenario.drain_limit_s
        while self._heap:
            t_s, kind, _, payload = heapq.heappop(self._heap)
            if t_s > limit:
                break
            self._now = t_s
            if kind == _ITERATION:
                self._iteration(payload)
            elif kind == _READY:
                self._ready(payload)
            elif kind == _ARRIVAL:
                self._arrival(payload)
            elif kind == _SCRAPE:
                self._scrape()
            else:
                self._control()
            if t_s >= self.horizon_s and self._all_done():
                break
        self._close_books()
        observed = list(getattr(self.policy, "observed_rates", ()))
        return RunResult(self.policy.name, self._records, self._gpu_s / 3600.0, self._scale_events,
                         self._timeline, self._decisions, self._now, observed,
                         list(getattr(self.policy, "observed_percentiles", ())))

    def _all_done(self) -> bool:
        return len(self._records) == len(self.arrivals) and self._settled == len(self._records)

    # pods -------------------------------------------------------------------------------------------------

    def _create_pod(self, t_s: float, ready: bool = False) -> None:
        index = next(self._names)
        pod = _Pod(f"{self.scenario.server.name}-{index}", index, t_s, SimReplica(self.params))
        self._pods.append(pod)
        if ready:
            pod.ready = True
        else:
            self._push(t_s + self.scenario.cluster.startup_s, _READY, pod)

    def _ready(self, pod: _Pod) -> None:
        if pod.terminating:
            return
        pod.ready = True
        self._note()
        while self._gateway:
            self._route(self._gateway.popleft())

    def _delete_pods(self, count: int) -> None:
        live = self._live
        order = sorted(live, key=lambda p: (p.ready, -p.index))  # not Ready first, then the newest
        for pod in order[:count]:
            pod.terminating = True
            if pod.replica.outstanding == 0:
                self._end_pod(pod)

    def _end_pod(self, pod: _Pod) -> None:
        pod.gone_s = self._now
        self._gpu_s += max(min(self._now, self.horizon_s) - pod.created_s, 0.0) * self.scenario.server.acc_count

    def _close_books(self) -> None:
        for pod in self._pods:
            if pod.gone_s is None:
                self._gpu_s += max(self.horizon_s - pod.created_s, 0.0) * self.scenario.server.acc_count
                pod.gone_s = self._now
        for record in self._gateway:
            record.dropped = True

    def _note(self) -> None:
        live = self._live
        entry = (self._now, len(live), sum(1 for p in live if p.ready))
        if not self._timeline or self._timeline[-1][1:] != entry[1:]:
            self._timeline.append(entry)

    def _clamp(self, replicas: int) -> int:
        cluster = self.scenario.cluster
        return min(max(int(replicas), cluster.min_replicas), cluster.max_replicas)

    # events -----------------------------------------------------------------------------------------------

    def _iteration(self, payload: tuple[_Pod, int]) -> None:
        pod, version = payload
        if version != pod.version:
            return  # rescheduled since
        self._finish(pod.replica.advance(self._now, inclusive=True))
        self._schedule(pod)
        if pod.terminating and pod.replica.outstanding == 0 and pod.gone_s is None:
            self._end_pod(pod)

    def _finish(self, finished: list) -> None:
        for request in finished:
            record: RequestRecord = request.tag
            record.ttft_s = request.first_token_s - record.arrival_s
            record.itl_s = ((request.last_token_s - request.first_token_s) / (request.generated - 1)
                            if request.generated > 1 else 0.0)
            record.finished_s = request.last_token_s
            self._settled += 1

    def _schedule(self, pod: _Pod) -> None:
        pod.version += 1
        when = pod.replica.next_change_s()
        if when is not None:
            self._push(max(when, self._now), _ITERATION, (pod, pod.version))

    def _arrival(self, index: int) -> None:
        arrival = self.arrivals[index]
        if index + 1 < len(self.arrivals):
            self._push(self.arrivals[index + 1].at_s, _ARRIVAL, index + 1)
        record = RequestRecord(arrival.at_s, arrival.prompt_tokens, arrival.output_tokens)
        self._records.append(record)
        self._route(record)

    def _route(self, record: RequestRecord) -> None:
        best: _Pod | None = None
        for pod in self._pods:
            if not pod.ready or pod.terminating:
                continue
            if best is None or pod.replica.outstanding < best.replica.outstanding:
                best = pod
        if best is None:
            self._gateway.append(record)
            return
        if not best.replica.fits(record.prompt_tokens, record.output_tokens):
            record.dropped = True
            self._settled += 1
            return
        self._finish(best.replica.submit(record.prompt_tokens, record.output_tokens, self._now, record))
        self._schedule(best)

    def _scrape(self) -> None:
        for pod in self._pods:
            if pod.ready and pod.gone_s is None:
                self._finish(pod.replica.advance(self._now))
                self._schedule(pod)
                self.prometheus.scrape(self._now, pod.name, pod.replica.sample())
        if self._now < self.horizon_s + self.scenario.drain_limit_s:
            self._push(self._now + self.scenario.metrics.scrape_interval_s, _SCRAPE)

    def _view(self) -> ClusterView:
        pods = tuple(PodView(p.name, p.ready, p.terminating) for p in self._pods if p.gone_s is None)
        return ClusterView(self._now, len(self._live), pods, self.prometheus)

    def _control(self) -> None:
        if self._now >= self.horizon_s:
            return
        self._push(self._now + self.policy.period_s, _CONTROL)
        desired = self.policy.decide(self._view())
        if desired is None:
            return
        desired = self._clamp(desired)
        self._decisions.append((self._now, desired))
        current = len(self._live)
        if desired == current:
            return
        self._scale_events += 1
        if desired > current:
            for _ in range(desired - current):
                self._create_pod(self._now)
        else:
            self._delete_pods(current - desired)
        self._note()
