"""Gamma-robust sizing (docs/model.md s10.2): candidates sized so that every server keeps its SLOs when its
replicas run at their worst-case perfParms (budgeted uncertainty, Bertsimas-Sim), the robust capacity row of
the exact model, and each server's worst-case ITL / TTFT (means, and the percentiles its class targets).

Per candidate k of server s (n_k replicas of one accelerator): rbar_k the most a replica takes within the SLOs
at the nominal perfParms, rwc_k the same at the worst case (alpha, beta, gamma each x (1 + deviation)), rhat_k
= rbar_k - rwc_k. The server's demand Lambda_s must fit what its replicas take when at most Gamma of its
configuration groups run at their worst case:

    sum_k rbar_k n_k x_k - Gamma tau_s - sum_k sigma_sk >= Lambda_s sum_k x_k,   tau_s + sigma_sk >= rhat_k n_k x_k

(tau, sigma >= 0). A server runs one candidate (one group), so Gamma >= 1 is its full worst case and a fraction
protects that share of the deviation. Rates in the row are integers (milli-requests per minute, rounded
against the server) and Gamma is taken in steps of 0.01, so the row and the sizing agree exactly.

Pure: numpy and the optimizer's own model, no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from services.core.model import Allocation, Robustness, SystemData
from services.optimizer.candidates import MS_PER_MINUTE, Candidate, CandidateSet, transition_value
from services.optimizer.percentiles import percentile_per_row, subset
from services.optimizer.sizing import Targets, size_replicas
from services.perfmodel.queueing import ChainBatch, chain_metrics, latency_ms, latency_parts
from services.perfmodel.servicetime import ReplicaModel

UNITS_PER_RPM = 1000
"""Integer rate units of the robust row: milli-requests per minute."""
GAMMA_STEPS = 100
"""Gamma's resolution in the robust row (0.01)."""
MAX_RATE_UNITS = 10**10
"""A replica whose SLOs never bind takes at most this (10^7 req/min): keeps the row's integers within int64."""


@dataclass(frozen=True, slots=True)
class RobustRate:
    """One candidate's per-replica rate caps in row units: ``nominal`` (rbar, rounded down) and ``drop``
    (rhat = rbar - worst case, rounded up); ``drop`` = ``nominal`` when no rate meets the SLOs at the worst case."""

    nominal: int
    drop: int


@dataclass(frozen=True, slots=True)
class RobustSet:
    """The robust candidates and what the row and the worst-case report need.

    ``candidates``: each server's candidates re-sized to the replicas the row asks for (servers with none left
    are in its ``unallocated``); ``rates`` per (server, accelerator, batch, queue), whatever the replicas;
    ``demand`` per server in row units; ``gamma_steps`` =
    round(Gamma x GAMMA_STEPS); ``worst_chains`` / ``worst_rows`` the worst-case replica models by (server,
    accelerator, batch, queue); ``nominal_replicas`` per (server, accelerator): replicas at the nominal sizing;
    ``percentile_targets`` per server its class's percentile targets (metric, percentile, ms), for the report.
    """

    candidates: CandidateSet
    rates: Mapping[tuple[str, str, int, int], RobustRate]
    demand: Mapping[str, int]
    gamma_steps: int
    worst_chains: ChainBatch | None
    worst_rows: Mapping[tuple[str, str, int, int], int]
    nominal_replicas: Mapping[tuple[str, str], int]
    rate_per_ms: Mapping[str, float]
    percentile_targets: Mapping[str, tuple[tuple[str, int, float], ...]] = field(default_factory=dict)


def robust_replicas(rate: RobustRate, demand: int, gamma_steps: int, at_least: int) -> int | None:
    """The fewest replicas (>= ``at_least``) whose protected supply covers ``demand`` (row units), or None when
    no number does (the worst case meets no SLO rate and Gamma >= 1)."""
    per_replica = GAMMA_STEPS * rate.nominal - min(gamma_steps, GAMMA_STEPS) * rate.drop
    if demand <= 0:
        return at_least
    if per_replica <= 0:
        return None
    return max(at_least, -(-GAMMA_STEPS * demand // per_replica))


def _worst_models(system: SystemData, cs: CandidateSet, robustness: Robustness
                  ) -> tuple[list[ReplicaModel], list[ReplicaModel], list[Targets], dict]:
    """Nominal replica models (the candidate's own, from ``cs.chains``), their worst cases and targets, once
    per (server, accelerator, batch, queue)."""
    nominal: list[ReplicaModel] = []
    worst: list[ReplicaModel] = []
    targets: list[Targets] = []
    index: dict[tuple[str, str, int, int], int] = {}
    for name, options in cs.options.items():
        server = cs.servers[name]
        target = system.service_class(server.service_class).target_for(server.model)  # type: ignore[union-attr]
        for cand in options:
            if cand.row < 0 or cs.chains is None:
                continue
            key = (name, cand.accelerator, cand.max_batch, cand.max_queue)
            if key in index:
                continue
            model = cs.chains.models[cand.row]
            index[key] = len(nominal)
            nominal.append(model)
            worst.append(replace(model, perf=robustness.deviation(server.model, cand.accelerator).worst(model.perf)))
            targets.append(Targets.of(target, system.optimizer.blocking_bound))  # type: ignore[arg-type]
    return nominal, worst, targets, index


def robust_candidates(system: SystemData, cs: CandidateSet) -> RobustSet:
    """Re-size ``cs`` (built at nominal perfParms) for ``system.optimizer.robustness`` (docs/model.md s10.2).

    Each loaded candidate keeps its accelerator and batch size and gets the fewest replicas that satisfy the
    robust row; a candidate that cannot (Gamma >= 1 and no rate meets the SLOs at the worst case) is dropped,
    and a server left without candidates is unallocated with the reason. Zero-load candidates are unchanged.
    """
    robustness = system.optimizer.robustness or Robustness()
    gamma_steps = round(robustness.gamma * GAMMA_STEPS)
    nominal, worst, targets, index = _worst_models(system, cs, robustness)
    rates: dict[tuple[str, str, int, int], RobustRate] = {}
    worst_chains = None
    if nominal:
        chains = ChainBatch.build(nominal + worst)
        sizing = size_replicas(chains, targets + targets)
        cap = np.where(sizing.feasible, sizing.capacity_per_ms, 0.0) * MS_PER_MINUTE * UNITS_PER_RPM
        worst_chains = chains  # the worst-case models are its rows len(nominal) + i
        for key, i in index.items():
            rbar = math.floor(min(cap[i], MAX_RATE_UNITS))
            rwc = min(cap[len(nominal) + i], cap[i])
            drop = min(rbar, math.ceil(rbar - rwc)) if math.isfinite(rwc) else 0
            rates[key] = RobustRate(rbar, max(drop, 0))
    demand = {name: math.ceil(options[0].rate_per_ms * MS_PER_MINUTE * UNITS_PER_RPM - 1e-9)
              for name, options in cs.options.items()}
    options: dict[str, tuple[Candidate, ...]] = {}
    nominal_replicas: dict[tuple[str, str], int] = {}
    unallocated = dict(cs.unallocated)
    for name, cands in cs.options.items():
        server = cs.servers[name]
        kept = []
        for cand in cands:
            nominal_replicas[name, cand.accelerator] = cand.num_replicas
            if cand.row < 0:
                kept.append(cand)
                continue
            n = robust_replicas(rates[_key(cand)], demand[name], gamma_steps, cand.num_replicas)
            if n is None:
                continue
            kept.append(cand if n == cand.num_replicas else _resized(cs, cand, n))
        if kept:
            options[name] = tuple(sorted(kept, key=lambda c: c.sort_key))
        else:
            unallocated[name] = (f"no accelerator keeps the SLOs at worst-case perfParms (robustness gamma "
                                 f"{robustness.gamma:g}) for model {server.model!r}")
    worst_rows = {key: len(nominal) + i for key, i in index.items()}
    rs_cs = CandidateSet(options, {n: cs.priorities[n] for n in options}, unallocated, cs.chains, cs.servers)
    rate_per_ms = {name: cands[0].rate_per_ms for name, cands in cs.options.items()}
    return RobustSet(rs_cs, rates, demand, gamma_steps, worst_chains, worst_rows, nominal_replicas, rate_per_ms,
                     _percentile_targets(system, cs))


def _percentile_targets(system: SystemData, cs: CandidateSet) -> dict[str, tuple[tuple[str, int, float], ...]]:
    """Per server of ``cs`` with percentile targets in its class: (metric, percentile, ms) each."""
    found = {}
    for name, server in cs.servers.items():
        svc = system.service_class(server.service_class)
        target = svc.target_for(server.model) if svc is not None else None
        wanted = target.percentile_targets() if target is not None else ()
        if wanted:
            found[name] = wanted
    return found


def _key(cand: Candidate) -> tuple[str, str, int, int]:
    return (cand.server, cand.accelerator, cand.max_batch, cand.max_queue)


def _resized(cs: CandidateSet, cand: Candidate, replicas: int) -> Candidate:
    """``cand`` with ``replicas`` replicas: value and nominal ITL / TTFT at the new per-replica load."""
    cur = cs.servers[cand.server].current
    value = transition_value(cur.accelerator, cur.num_replicas, cur.cost_per_hour, cand.accelerator, replicas,
                             cand.cost_per_replica * replicas)
    itl, ttft = cand.itl_ms, cand.ttft_ms
    if cs.chains is not None:
        rows = np.array([cand.row])
        metrics = chain_metrics(cs.chains, np.array([cand.rate_per_ms / replicas]), rows)
        itl_a, ttft_a = latency_ms(cs.chains, metrics, rows)
        itl, ttft = float(itl_a[0]), float(ttft_a[0])
    return replace(cand, num_replicas=replicas, value=value, itl_ms=itl, ttft_ms=ttft)


@dataclass(frozen=True, slots=True)
class WorstCase:
    """A server's latency at its allocation if its replicas run at their worst-case perfParms (ms; inf when the
    replica is unstable there), and the replicas the nominal sizing would have given it on that accelerator;
    ``percentiles`` the worst-case figure of each percentile its class targets, keyed as Allocation's fields
    (``ttft_ms_p90``; docs/model.md s3.2), empty for a class with mean targets only."""

    itl_ms: float
    ttft_ms: float
    nominal_replicas: int
    percentiles: Mapping[str, float] = field(default_factory=dict)


def worst_case(rs: RobustSet, allocations: Mapping[str, Allocation]) -> dict[str, WorstCase]:
    """Worst-case ITL / TTFT of every loaded allocation (docs/model.md s10.2), at its per-replica load, and of
    the percentiles its class targets."""
    keys, rates = [], []
    for name, alloc in allocations.items():
        key = (name, alloc.accelerator, alloc.max_batch, alloc.max_queue)
        if rs.worst_chains is None or key not in rs.worst_rows or alloc.num_replicas <= 0:
            continue
        keys.append((name, key))
        served = rs.rate_per_ms.get(name, 0.0) - alloc.unserved_rate_rpm / MS_PER_MINUTE
        rates.append(max(served, 0.0) / alloc.num_replicas)
    if not keys:
        return {}
    rows = np.array([rs.worst_rows[key] for _, key in keys])
    metrics = chain_metrics(rs.worst_chains, np.array(rates), rows)  # type: ignore[arg-type]
    parts = latency_parts(rs.worst_chains, metrics, rows)  # type: ignore[arg-type]
    itl, ttft = parts.itl_ms, parts.ttft_ms
    percentiles: dict[str, dict[str, float]] = {}
    entries = [(k, metric, q, value) for k, (name, _) in enumerate(keys)
               for metric, q, value in rs.percentile_targets.get(name, ())]
    if entries:
        ks = np.array([k for k, *_ in entries])
        got = percentile_per_row(rs.worst_chains, rows[ks], np.array(rates)[ks],  # type: ignore[arg-type]
                                 np.array([metric == "itl" for _, metric, _, _ in entries]),
                                 np.array([q for _, _, q, _ in entries], dtype=float),
                                 subset(metrics, ks), subset(parts, ks))
        for (k, metric, q, _), value in zip(entries, got, strict=True):
            percentiles.setdefault(keys[k][0], {})[f"{metric}_ms_p{q}"] = float(value)
    return {name: WorstCase(float(itl[k]), float(ttft[k]), rs.nominal_replicas.get((name, key[1]), 0),
                            percentiles.get(name, {}))
            for k, (name, key) in enumerate(keys)}


def add_robust_rows(model, choices: Mapping[str, list], rs: RobustSet) -> int:
    """Add the robust row of docs/model.md s10.2 to a CP-SAT allocation ``model``, one per server of
    ``choices`` (server -> [(candidate, boolean)]): GAMMA_STEPS x (sum_k rbar_k n_k x_k - Lambda_s sum_k x_k)
    - gamma_steps tau_s - GAMMA_STEPS sum_k sigma_k >= 0, tau_s + sigma_k >= rhat_k n_k x_k, all integers.
    Zero-load candidates are free; a loaded candidate must be one of ``rs``'s (any replica count: the rates are per
    replica), else KeyError. Returns the number of rows added."""
    added = 0
    for name, pairs in sorted(choices.items()):
        terms = [(cand, x, rs.rates[_key(cand)]) for cand, x in pairs if cand.row >= 0]
        if not terms:
            continue
        drops = [rate.drop * cand.num_replicas for cand, _, rate in terms]
        tau = model.new_int_var(0, max(drops), f"robust_tau_{added}")
        sigmas = [model.new_int_var(0, drop, f"robust_sigma_{added}_{k}") for k, drop in enumerate(drops)]
        for (_, x, _), sigma, drop in zip(terms, sigmas, drops, strict=True):
            model.add(tau + sigma >= drop * x)
        demand = rs.demand.get(name, 0)
        supply = sum(GAMMA_STEPS * (rate.nominal * cand.num_replicas - demand) * x for cand, x, rate in terms)
        model.add(supply - rs.gamma_steps * tau - GAMMA_STEPS * sum(sigmas) >= 0)
        added += 1
    return added


@dataclass(frozen=True, slots=True)
class RobustReport:
    """The price of robustness and each server's worst case (docs/model.md s10.2).

    ``cost_per_hour`` at ``gamma``, ``nominal_cost_per_hour`` for the same system at Gamma 0; ``allocated`` /
    ``nominal_allocated`` count the servers allocated in full (not best effort) in each, so a negative price
    under scarce capacity shows as fewer servers served; ``worst`` per allocated, loaded server.
    """

    gamma: float
    cost_per_hour: float
    nominal_cost_per_hour: float
    allocated: int
    nominal_allocated: int
    worst: Mapping[str, WorstCase]

    @property
    def price_per_hour(self) -> float:
        """Cost at Gamma minus cost at 0."""
        return self.cost_per_hour - self.nominal_cost_per_hour

    @property
    def price_fraction(self) -> float:
        """The price relative to the cost at Gamma 0 (0 when that is 0)."""
        return self.price_per_hour / self.nominal_cost_per_hour if self.nominal_cost_per_hour > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {"gamma": self.gamma, "cost_per_hour": self.cost_per_hour,
                "nominal_cost_per_hour": self.nominal_cost_per_hour, "price_per_hour": self.price_per_hour,
                "price_fraction": self.price_fraction, "allocated": self.allocated,
                "nominal_allocated": self.nominal_allocated,
                "worst": {name: {"itl_ms": w.itl_ms, "ttft_ms": w.ttft_ms, "nominal_replicas": w.nominal_replicas,
                                 **dict(sorted(w.percentiles.items()))}
                          for name, w in sorted(self.worst.items())}}


def report_text(report: RobustReport, system: SystemData, allocations: Mapping[str, Allocation]) -> str:
    """The report as lines under the solution table: price of robustness, then per server replicas (nominal
    sizing's), worst-case ITL and TTFT against the SLOs and, for a class with percentile targets, each
    worst-case percentile against its target ("!" marks a target missed)."""
    r = report
    lines = [f"robustness: Gamma {r.gamma:g}: cost per hour {r.cost_per_hour:.2f} vs {r.nominal_cost_per_hour:.2f} "
             f"at Gamma 0, price of robustness {r.price_per_hour:+.2f} ({r.price_fraction:+.1%}); servers allocated in "
             f"full {r.allocated} vs {r.nominal_allocated}",
             f"  {'server':<24} {'replicas (nominal)':>18}  {'worst ITL ms (SLO)':>20}  {'worst TTFT ms (SLO)':>21}"
             + ("  worst percentiles ms (SLO)" if any(w.percentiles for w in r.worst.values()) else "")]
    servers = {s.name: s for s in system.servers}
    for name, worst in sorted(r.worst.items()):
        server = servers[name]
        svc = system.service_class(server.service_class)
        target = svc.target_for(server.model) if svc is not None else None
        itl_slo = target.slo_itl_ms if target is not None else 0.0
        ttft_slo = target.slo_ttft_ms if target is not None else 0.0
        percentiles = "".join(f"  {metric.upper()} P{q} {_vs(worst.percentiles[f'{metric}_ms_p{q}'], value)}".rstrip()
                              for metric, q, value in (target.percentile_targets() if target is not None else ())
                              if f"{metric}_ms_p{q}" in worst.percentiles)
        lines.append(f"  {name:<24} {allocations[name].num_replicas:>10} ({worst.nominal_replicas:>5})  "
                     f"{_vs(worst.itl_ms, itl_slo):>20}  {_vs(worst.ttft_ms, ttft_slo):>21}{percentiles}")
    return "\n".join(lines) + "\n"


def _vs(value: float, slo: float) -> str:
    missed = "!" if slo > 0 and value > slo * (1 + 1e-9) else " "
    shown = f"{value:.2f}" if math.isfinite(value) else "inf"
    return f"{shown} ({slo:g}){missed}" if slo > 0 else f"{shown} (-) "
