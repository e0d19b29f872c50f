"""Gamma-robust sizing (docs/model.md s10.2): Gamma 0 is the nominal answer, a larger Gamma never costs less,
and at Gamma >= 1 every allocated server keeps its SLOs at its worst-case perfParms."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.core.model import Deviation, Robustness, SystemData
from services.optimizer.robust import report_text
from services.optimizer.solver import solve


def _robust(system: SystemData, gamma: float, deviation: float = 0.2, unlimited: bool | None = None,
            deviations: tuple = ()) -> SystemData:
    settings = replace(system.optimizer, robustness=Robustness(gamma, Deviation(deviation, deviation, deviation),
                                                               deviations))
    if unlimited is not None:
        settings = replace(settings, unlimited=unlimited)
    return replace(system, optimizer=settings)


def _slo(system: SystemData, name: str) -> tuple[float, float]:
    server = next(s for s in system.servers if s.name == name)
    target = system.service_class(server.service_class).target_for(server.model)
    return target.slo_itl_ms, target.slo_ttft_ms


@pytest.mark.parametrize("name", ["small_system", "large_system"])
def test_gamma_zero_is_the_nominal_answer(name: str, request: pytest.FixtureRequest) -> None:
    system: SystemData = request.getfixturevalue(name)
    nominal = solve(system)
    at_zero = solve(_robust(system, 0.0, deviation=0.5))
    assert at_zero.solution == nominal.solution
    assert at_zero.robust is None  # nothing to report: the answer is the nominal one


def test_a_larger_gamma_never_costs_less_and_never_takes_fewer_replicas(small_system: SystemData) -> None:
    costs, replicas = [], []
    for gamma in (0.0, 0.25, 0.5, 1.0, 2.0):
        result = solve(_robust(small_system, gamma, unlimited=True))
        assert not result.solution.unallocated
        costs.append(result.solution.total_cost_per_hour)
        replicas.append({n: (a.accelerator, a.num_replicas) for n, a in result.solution.allocations.items()})
    assert costs == sorted(costs) and costs[0] < costs[3]
    assert costs[3] == costs[4]  # one group per server: Gamma >= 1 is the full worst case
    for before, after in zip(replicas, replicas[1:], strict=False):
        for name, (acc, n) in before.items():
            if after[name][0] == acc:
                assert after[name][1] >= n, name


def test_at_gamma_one_every_server_keeps_its_slos_at_the_worst_case(small_system: SystemData) -> None:
    robust = solve(_robust(small_system, 1.0, unlimited=True))
    assert robust.robust is not None and set(robust.robust.worst) == set(robust.solution.allocations)
    for name, worst in robust.robust.worst.items():
        itl_slo, ttft_slo = _slo(small_system, name)
        assert worst.itl_ms <= itl_slo * (1 + 1e-6) and worst.ttft_ms <= ttft_slo * (1 + 1e-6), name
    # ... which the nominal sizing does not: some server misses an SLO when its replicas are at the worst case.
    barely = solve(_robust(small_system, 0.01, unlimited=True))
    assert any(w.itl_ms > _slo(small_system, n)[0] or w.ttft_ms > _slo(small_system, n)[1]
               for n, w in barely.robust.worst.items())


def test_price_of_robustness_is_reported_against_gamma_zero(small_system: SystemData) -> None:
    nominal = solve(replace(small_system, optimizer=replace(small_system.optimizer, unlimited=True)))
    result = solve(_robust(small_system, 1.0, unlimited=True))
    report = result.robust
    assert report.nominal_cost_per_hour == pytest.approx(nominal.solution.total_cost_per_hour)
    assert report.cost_per_hour == pytest.approx(result.solution.total_cost_per_hour)
    assert report.price_per_hour > 0 and report.price_fraction == pytest.approx(
        report.price_per_hour / report.nominal_cost_per_hour)
    text = report_text(report, small_system, result.solution.allocations)
    assert "price of robustness +" in text and "Premium-llama_70b" in text


def test_a_pair_with_its_own_deviation_is_sized_by_it(small_system: SystemData) -> None:
    base = solve(_robust(small_system, 1.0, deviation=0.0, unlimited=True))
    wide = solve(_robust(small_system, 1.0, deviation=0.0, unlimited=True,
                         deviations=(("llama_70b", "G2", Deviation(0.5, 0.5, 0.5)),)))
    changed = {n for n, a in wide.solution.allocations.items()
               if (a.accelerator, a.num_replicas) != (base.solution.allocations[n].accelerator,
                                                      base.solution.allocations[n].num_replicas)}
    assert changed and all("llama_70b" in n for n in changed)


def test_a_server_that_cannot_keep_its_slos_at_the_worst_case_is_unallocated_with_the_reason(
        small_system: SystemData) -> None:
    result = solve(_robust(small_system, 1.0, deviation=10.0, unlimited=True))
    assert result.solution.unallocated
    assert all("worst-case perfParms" in reason for reason in result.solution.unallocated.values())
    # a fraction of the deviation is protected where the full one cannot be
    partial = solve(_robust(small_system, 0.05, deviation=10.0, unlimited=True))
    assert len(partial.solution.unallocated) < len(result.solution.unallocated)


@pytest.fixture(scope="module")
def stub():
    import grpc

    from proto import optimizer_pb2_grpc
    from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
    from services.runtime.grpcserve import build_server

    grpc_server, port, _ = build_server(register(OptimizerServicer()), [SERVICE_NAME], "127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield optimizer_pb2_grpc.OptimizerServiceStub(channel)
    grpc_server.stop(None)


def _optimize(stub, system: SystemData):
    from proto import optimizer_pb2
    from services.runtime import convert

    return stub.Optimize(optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(system)), timeout=60)


def test_the_service_sizes_robustly_and_reports_price_and_worst_cases(small_system: SystemData, stub) -> None:
    from services.runtime import convert

    system = _robust(small_system, 1.0, unlimited=True,
                     deviations=(("llama_70b", "G2", Deviation(0.3, 0.1, 0.1)),))
    reply = _optimize(stub, system)
    local = solve(system)
    assert convert.solution_from_proto(reply) == local.solution
    report = reply.robustness
    assert report.gamma == 1.0
    assert report.cost_per_hour == pytest.approx(local.robust.cost_per_hour)
    assert report.nominal_cost_per_hour == pytest.approx(local.robust.nominal_cost_per_hour)
    assert report.cost_per_hour > report.nominal_cost_per_hour
    assert [w.server_name for w in report.worst] == sorted(local.solution.allocations)
    for w in report.worst:
        assert w.ttft_ms == pytest.approx(local.robust.worst[w.server_name].ttft_ms)
        assert w.nominal_replicas <= local.solution.allocations[w.server_name].num_replicas
    assert not _optimize(stub, small_system).HasField("robustness")  # off by default


def test_the_service_refuses_a_negative_gamma_or_deviation(small_system: SystemData, stub) -> None:
    import grpc

    for system in (_robust(small_system, -1.0), _robust(small_system, 1.0, deviation=-0.2),
                   _robust(small_system, 1.0, deviation=11.0)):
        with pytest.raises(grpc.RpcError) as err:
            _optimize(stub, system)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "optimizer.robustness." in err.value.details()


def test_the_exact_model_carries_the_robust_row(small_system: SystemData) -> None:
    from ortools.sat.python import cp_model

    from services.optimizer.candidates import build_candidates
    from services.optimizer.exact import build_model
    from services.optimizer.robust import robust_candidates

    system = _robust(small_system, 1.0)
    rs = robust_candidates(system, build_candidates(system))
    name = "Premium-llama_70b"
    robust = rs.candidates.options[name][0]
    nominal = next(c for c in build_candidates(system).options[name] if c.accelerator == robust.accelerator)
    assert nominal.num_replicas < robust.num_replicas and nominal.value < robust.value
    picked = {}
    for label, rows in (("without", None), ("with", rs)):
        am = build_model({name: [nominal, robust]}, {name: 1}, {robust.accelerator_type: 100_000}, rows)
        am.model.add(am.served[1] == 1)
        am.model.minimize(am.value_cents)
        solver = cp_model.CpSolver()
        assert solver.solve(am.model) == cp_model.OPTIMAL
        picked[label] = next(c for c, x in am.choices[name] if solver.boolean_value(x))
    assert picked == {"without": nominal, "with": robust}  # the row, not the candidate list, excludes the cheap one


def test_cli_solve_prints_the_price_and_worst_cases(capsys: pytest.CaptureFixture[str]) -> None:
    from services.optimizer.cli import main
    from tests.optimizer.conftest import SAMPLES

    small = f"{SAMPLES}/small"
    assert main(["solve", "--data-dir", small, "--unlimited", "--robust-gamma", "1", "--max-deviation", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "robustness: Gamma 1: cost per hour" in out and "price of robustness +" in out
    assert "worst TTFT ms (SLO)" in out and "Premium-llama_70b" in out.split("robustness:")[1]
    assert main(["solve", "--data-dir", small]) == 0
    assert "robustness:" not in capsys.readouterr().out  # off by default
    assert main(["solve", "--data-dir", small, "--robust-gamma", "1"]) == 1
    assert "give both --robust-gamma and --max-deviation" in capsys.readouterr().err
    assert main(["solve", "--data-dir", small, "--robust-gamma", "1", "--max-deviation", "-0.5"]) == 1
    assert "--max-deviation must be within 0..10" in capsys.readouterr().err


def test_robustness_crosses_the_wire_unchanged(small_system: SystemData) -> None:
    from services.runtime import convert

    system = _robust(small_system, 1.25, deviation=0.3, deviations=(("llama_70b", "G2", Deviation(0.1, 0.2, 0.4)),))
    assert convert.system_from_proto(convert.system_to_proto(system)) == system
    assert convert.system_from_proto(convert.system_to_proto(small_system)).optimizer.robustness is None


def test_with_binding_capacity_the_exact_solver_never_costs_less_at_a_larger_gamma(small_system: SystemData) -> None:
    from services.core.model import Capacity
    from services.optimizer.solver import units_used

    # Capacity exactly what the full worst case needs when every server takes its cheapest robust candidate:
    # every Gamma fits in full, and the cheapest nominal choices of some types no longer all fit.
    worst = solve(_robust(small_system, 1.0, unlimited=True))
    system = replace(small_system, capacity=Capacity(units_used(small_system, worst.solution)))
    costs = []
    for gamma in (0.0, 0.5, 1.0, 2.0):
        result = solve(_robust(system, gamma))
        assert result.stats.solver == "exact"
        assert len(result.solution.allocations) == 15 and not any(
            a.saturated for a in result.solution.allocations.values())
        costs.append(result.solution.total_cost_per_hour)
    assert costs == sorted(costs) and costs[0] < costs[2] and costs[2] == costs[3]


def _percentile_class(system: SystemData, percentile: int, ttft_ms: float = 1000.0, itl_ms: float = 0.0
                      ) -> SystemData:
    """``system`` with the Premium class's targets also stating TTFT (and ITL) at ``percentile``."""
    from services.core.model import percentile_field

    def stated(target):
        values = {percentile_field("ttft", percentile): ttft_ms}
        if itl_ms:
            values[percentile_field("itl", percentile)] = itl_ms
        return replace(target, **values)

    return replace(system, service_classes=tuple(
        replace(c, targets=tuple(stated(t) for t in c.targets)) if c.name == "Premium" else c
        for c in system.service_classes))


def test_at_gamma_one_a_class_with_percentile_targets_keeps_them_at_the_worst_case(small_system) -> None:
    system = _percentile_class(small_system, 90, ttft_ms=1000.0, itl_ms=60.0)
    robust = solve(_robust(system, 1.0, unlimited=True))
    premium = {n for n in robust.solution.allocations if n.startswith("Premium-")}
    assert premium and {n for n, w in robust.robust.worst.items() if w.percentiles} == premium
    for name in premium:
        worst = robust.robust.worst[name]
        assert set(worst.percentiles) == {"ttft_ms_p90", "itl_ms_p90"}, name
        assert worst.percentiles["ttft_ms_p90"] <= 1000.0 * (1 + 1e-6), name
        assert worst.percentiles["itl_ms_p90"] <= 60.0 * (1 + 1e-6), name
        nominal = robust.solution.allocations[name]  # the same replicas and load at the nominal perfParms
        assert worst.percentiles["ttft_ms_p90"] >= nominal.ttft_ms_p90 * (1 - 1e-9), name
        assert worst.percentiles["itl_ms_p90"] > nominal.itl_ms_p90, name
    # ... which nominal sizing does not promise: some Premium server misses its P90 at the worst case
    barely = solve(_robust(system, 0.01, unlimited=True))
    assert any(barely.robust.worst[n].percentiles["ttft_ms_p90"] > 1000.0 for n in premium)
    text = report_text(robust.robust, system, robust.solution.allocations)
    assert "worst percentiles ms (SLO)" in text
    line = next(line for line in text.splitlines() if line.strip().startswith("Premium-llama_70b"))
    assert "TTFT P90" in line and "(1000)" in line and "ITL P90" in line and "(60)" in line
    assert robust.robust.as_dict()["worst"]["Premium-llama_70b"]["ttft_ms_p90"] == pytest.approx(
        robust.robust.worst["Premium-llama_70b"].percentiles["ttft_ms_p90"])
    plain = solve(_robust(small_system, 1.0, unlimited=True))  # mean targets only: no percentile column
    assert "worst percentiles" not in report_text(plain.robust, small_system, plain.solution.allocations)


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_a_tighter_percentile_never_gives_fewer_robust_replicas(small_system, gamma: float) -> None:
    previous = None
    for percentile in (50, 90, 99):  # same figure, higher percentile: tighter
        result = solve(_robust(_percentile_class(small_system, percentile, ttft_ms=800.0), gamma, unlimited=True))
        assert not result.solution.unallocated
        replicas = {n: (a.accelerator, a.num_replicas) for n, a in result.solution.allocations.items()}
        if previous is not None:
            for name, (acc, n) in previous.items():
                if replicas[name][0] == acc:
                    assert replicas[name][1] >= n, (percentile, name)
            assert sum(n for _, n in replicas.values()) > sum(n for _, n in previous.values()) or percentile == 90
        previous = replicas


def test_the_service_reports_the_worst_case_percentiles(small_system: SystemData, stub) -> None:
    system = _robust(_percentile_class(small_system, 99, ttft_ms=2000.0), 1.0, unlimited=True)
    reply = _optimize(stub, system)
    local = solve(system).robust.worst
    worst = {w.server_name: dict(w.percentiles) for w in reply.robustness.worst}
    assert set(worst) == set(local)
    for name, figures in worst.items():
        assert figures == pytest.approx(dict(local[name].percentiles)), name
    assert worst["Premium-llama_70b"]["ttft_ms_p99"] <= 2000.0 * (1 + 1e-6) and not worst["Free-llama_13b"]
