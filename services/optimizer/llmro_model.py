"""The LLM-RO allocation MILP (docs/model.md s10) built with OR-Tools' linear solver wrapper (HiGHS or SCIP).

Decisions: x[i,j,k] the fraction of query type i routed to model j on GPU tier k; z[i,j,k] placement (binary,
one (model, tier) per query type); q[j,k] deployment active; w[j,k,n] its tensor-parallel degree n; y[j,k] = n
GPUs (integer); u[i] the unserved fraction (at most ``unmet_cap``); v[i,j,k,n] = w[j,k,n] x[i,j,k] (McCormick).

Robust variant (Bertsimas-Sim budgeted uncertainty, the reference's RODIU model): every per-token delay may rise
from d to d + dhat xi and every error rate from e to e + ehat xi, xi in [0, 1], at most Gamma of them at once per
row. Each row's worst case is linearised with duals tau (per row) and sigma (per term): row + Gamma tau +
sum sigma <= limit, tau + sigma >= dhat x. The objective charges the worst-case delay *deviation* cost
(rho x lambda x dhat x tokens, per hour) and not the nominal delay, as the reference does.

Deterministic variant (the reference's LLM_DET model on the same instance): nominal delays and errors only,
the nominal delay cost per hour in the objective, every query served (u = 0).

Delay-row right-hand side: the reference writes Delta_i x (TP degree of one fixed deployment, the (model, tier)
left over from an earlier loop: the last model on the last tier), which forces that deployment into every
solution. ``compat=True`` keeps it (reproduces the published figures); ``compat=False`` uses the TP degree of the
deployment that serves the query type (sum_{j,k,n} n v[i,j,k,n]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.linear_solver import pywraplp

from services.core.errors import InfeasibleError, InvalidInputError
from services.optimizer.llmro_instance import Instance

SOLVERS = {"highs": "HIGHS", "scip": "SCIP"}
_EPS = 1e-6


@dataclass(frozen=True)
class Deployment:
    """GPUs running one model on one tier: ``gpus`` = ``tp`` (one replica with tensor parallelism ``tp``)."""

    model: str
    tier: str
    tp: int
    gpus: int


@dataclass(frozen=True)
class Route:
    """Fraction of a query type's arrivals sent to a deployment (queries per hour = fraction x arrival rate)."""

    query_type: str
    model: str
    tier: str
    fraction: float
    queries_per_h: float


@dataclass(frozen=True)
class Result:
    """A solved LLM-RO problem. ``breakdown`` in $ (rental and storage over the horizon, penalties per hour, as the
    reference's objective): rental, storage, delay_deviation_penalty (robust) or delay_penalty (deterministic),
    unmet_penalty; they add up to ``objective``."""

    status: str                      # OPTIMAL or FEASIBLE (time limit reached with a solution)
    objective: float
    breakdown: dict[str, float]
    deployments: list[Deployment]
    routes: list[Route]
    unmet: dict[str, float]          # query type -> unserved fraction (only those > 0)
    gamma: float
    mode: str                        # compat, fixed or deterministic
    solver: str
    solve_s: float
    bound: float
    extra: dict = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return sum(d.gpus for d in self.deployments)


def solve_llmro(inst: Instance, gamma: float | None = None, compat: bool = True, deterministic: bool = False,
                solver: str = "highs", time_limit_s: float = 60.0) -> Result:
    """Build and solve the robust (or deterministic) LLM-RO MILP of ``inst``.

    ``gamma`` overrides the instance's budget (>= 0; values >= the number of terms per row, here 1 since a query
    type is placed once, are the full worst case). Raises InvalidInputError for a bad gamma, solver name or time
    limit, InfeasibleError when the solver proves infeasibility or finds no solution within the time limit."""
    gamma = inst.gamma if gamma is None else gamma
    if not (isinstance(gamma, int | float) and np.isfinite(gamma) and gamma >= 0):
        raise InvalidInputError(f"--gamma must be a finite number >= 0, got {gamma!r}")
    if solver not in SOLVERS:
        raise InvalidInputError(f"--solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if not (np.isfinite(time_limit_s) and time_limit_s > 0):
        raise InvalidInputError(f"--time-limit must be > 0 s, got {time_limit_s!r}")
    a = inst.arrays()
    n_i, n_j, n_k = inst.shape
    tps = inst.tp_degrees
    tokens = a["input_tokens"] + a["output_tokens"]            # I
    lam = a["arrival_per_h"]
    d_bar, d_hat, e_bar, e_hat = a["delay_ms"], a["delay_dev_ms"], a["error"], a["error_dev"]
    horizon, p_s = inst.horizon_h, inst.storage_per_gb_h
    s = pywraplp.Solver.CreateSolver(SOLVERS[solver])
    if s is None:  # pragma: no cover - both backends ship with the pinned ortools wheel
        raise InvalidInputError(f"OR-Tools has no {solver} backend")
    s.SetTimeLimit(int(time_limit_s * 1000))
    if solver == "highs":
        # Any solver-specific parameter string makes the wrapper configure HiGHS quietly: without one, HiGHS prints
        # its banner on stdout, which would break --json.
        s.SetSolverSpecificParametersAsString("output_flag=false")
    inf = s.infinity()
    rng_i, rng_j, rng_k = range(n_i), range(n_j), range(n_k)
    ijk = [(i, j, k) for i in rng_i for j in rng_j for k in rng_k]
    jk = [(j, k) for j in rng_j for k in rng_k]
    x = {t: s.NumVar(0, 1, f"x{t}") for t in ijk}
    z = {t: s.BoolVar(f"z{t}") for t in ijk}
    y = {t: s.IntVar(0, inf, f"y{t}") for t in jk}
    q = {t: s.BoolVar(f"q{t}") for t in jk}
    w = {(j, k, n): s.BoolVar(f"w{j},{k},{n}") for j, k in jk for n in tps}
    v = {(i, j, k, n): s.NumVar(0, 1, f"v{i},{j},{k},{n}") for i, j, k in ijk for n in tps}
    u = [s.NumVar(0, 0 if deterministic else inst.unmet_cap, f"u{i}") for i in rng_i]
    cost_rental = horizon * sum(a["rental_per_h"][k] * y[j, k] for j, k in jk)
    cost_storage = horizon * p_s * sum(a["model_size_gb"][j] * z[i, j, k]
                                       + a["data_gb_per_token"][i] * tokens[i] * lam[i] * x[i, j, k]
                                       for i, j, k in ijk)
    cost_unmet = sum(a["unmet_penalty"][i] * lam[i] * u[i] for i in rng_i)
    for i in rng_i:
        s.Add(sum(x[i, j, k] for j, k in jk) + u[i] == 1)
        s.Add(sum(z[i, j, k] for j, k in jk) == 1)      # one (model, tier) per query type
    for t in ijk:
        s.Add(x[t] <= z[t])
        s.Add(z[t] <= q[t[1:]])
    # Budget: as coded in the reference, the rental term sits inside the sum over query types (counted I times).
    s.Add(horizon * sum(a["rental_per_h"][k] * y[j, k] for _, j, k in ijk) + cost_storage <= inst.budget)
    for j, k in jk:
        s.Add(sum(w[j, k, n] for n in tps) == q[j, k])
        s.Add(y[j, k] == sum(n * w[j, k, n] for n in tps))
        s.Add(sum(a["compute_tflops_per_token"][i] * tokens[i] * x[i, j, k] for i in rng_i)
              <= a["gpu_tflops"][k] * y[j, k])
        if a["model_size_gb"][j] > a["gpu_memory_gb"][k] * max(tps):
            s.Add(y[j, k] == 0)                          # does not fit even at the largest TP degree
            continue
        # Memory per GPU: weights / n + KV cache of the resident queries (Little's law: rate x residency) / n.
        s.Add(sum(a["model_size_gb"][j] / n * w[j, k, n] for n in tps)
              + sum(a["kv_gb_per_token"][j] / n * tokens[i] * lam[i] * inst.residency_h * v[i, j, k, n]
                    for i in rng_i for n in tps)
              <= a["gpu_memory_gb"][k] * q[j, k])
    for i, j, k in ijk:
        for n in tps:
            s.Add(v[i, j, k, n] <= w[j, k, n])
            s.Add(v[i, j, k, n] <= x[i, j, k])
            s.Add(v[i, j, k, n] >= x[i, j, k] - (1 - w[j, k, n]))
    s.Add(sum(a["model_size_gb"][j] * z[t] for t in ijk for j in [t[1]]) <= inst.storage_capacity_gb)

    last_j, last_k = n_j - 1, n_k - 1
    for i in rng_i:
        if compat:
            tp_rhs = sum(n * w[last_j, last_k, n] for n in tps)
        else:
            tp_rhs = sum(n * v[i, j, k, n] for j, k in jk for n in tps)
        delay_row = sum(d_bar[i, j, k] * tokens[i] * x[i, j, k] for j, k in jk)
        error_row = sum(e_bar[i, j, k] * x[i, j, k] for j, k in jk)
        if not deterministic:
            delay_row += _protection(s, gamma, {(j, k): d_hat[i, j, k] * tokens[i] * x[i, j, k] for j, k in jk})
            error_row += _protection(s, gamma, {(j, k): e_hat[i, j, k] * x[i, j, k] for j, k in jk})
        s.Add(delay_row <= a["delay_limit_ms"][i] * tp_rhs)
        s.Add(error_row <= a["error_limit"][i])
    rho = a["delay_penalty"]
    if deterministic:
        cost_delay = sum(rho[i] * d_bar[i, j, k] * tokens[i] * lam[i] * x[i, j, k] for i, j, k in ijk)
    else:
        # Worst-case delay-deviation cost: one budget Gamma per query type, as the reference's objective row.
        cost_delay = sum(_protection(s, gamma, {(j, k): d_hat[i, j, k] * rho[i] * lam[i] * tokens[i] * x[i, j, k]
                                                for j, k in jk}) for i in rng_i)
    s.Minimize(cost_rental + cost_storage + cost_unmet + cost_delay)
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, 1e-7)
    started_ms = s.wall_time()  # OR-Tools' own clock: this module reads none (injected or solver-measured only)
    code = s.Solve(params)
    solve_s = (s.wall_time() - started_ms) / 1000
    if code not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        what = {pywraplp.Solver.INFEASIBLE: "infeasible", pywraplp.Solver.UNBOUNDED: "unbounded"}.get(
            code, f"no solution within {time_limit_s:g} s")
        raise InfeasibleError(f"LLM-RO model ({_mode(compat, deterministic)}, Gamma {gamma:g}): {what}")
    deployments = []
    for j, k in jk:
        gpus = round(y[j, k].solution_value())
        if gpus > 0:
            tp = next(n for n in tps if w[j, k, n].solution_value() > 0.5)
            deployments.append(Deployment(inst.models[j], inst.gpu_tiers[k], tp, gpus))
    routes = [Route(inst.query_types[i], inst.models[j], inst.gpu_tiers[k], x[i, j, k].solution_value(),
                    x[i, j, k].solution_value() * lam[i])
              for i, j, k in ijk if x[i, j, k].solution_value() > _EPS]
    unmet = {inst.query_types[i]: u[i].solution_value() for i in rng_i if u[i].solution_value() > _EPS}
    breakdown = {"rental": _value(cost_rental), "storage": _value(cost_storage),
                 ("delay_penalty" if deterministic else "delay_deviation_penalty"): _value(cost_delay),
                 "unmet_penalty": _value(cost_unmet)}
    return Result(status="OPTIMAL" if code == pywraplp.Solver.OPTIMAL else "FEASIBLE",
                  objective=s.Objective().Value(), breakdown=breakdown, deployments=deployments, routes=routes,
                  unmet=unmet, gamma=float(gamma), mode=_mode(compat, deterministic), solver=solver,
                  solve_s=solve_s, bound=s.Objective().BestBound())


def _mode(compat: bool, deterministic: bool) -> str:
    return ("deterministic-" if deterministic else "") + ("compat" if compat else "fixed")


def _protection(s: pywraplp.Solver, gamma: float, terms: dict):
    """Bertsimas-Sim protection of one row: max over xi in [0, 1], sum xi <= gamma, of sum_t xi_t terms_t, as its
    LP dual gamma tau + sum_t sigma_t with tau + sigma_t >= terms_t, tau, sigma >= 0 (terms are >= 0)."""
    tau = s.NumVar(0, s.infinity(), "")
    sigma = {t: s.NumVar(0, s.infinity(), "") for t in terms}
    for t, term in terms.items():
        s.Add(tau + sigma[t] >= term)
    return gamma * tau + sum(sigma.values())


def _value(expr) -> float:
    if isinstance(expr, int | float):
        return float(expr)
    return float(expr.solution_value())
