"""Several classes sharing one pool (docs/model.md s13): the `qos` command reproduces the seeds' figures (seed 000:
2 then 3 instances, Alan <= 5.288045 RPM per instance; seed 003: priority 3, FCFS 5), and the model's
answers keep every class within its bound on every replica."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from services.core.model import PerfParms, ServiceModel
from services.optimizer.cli import main
from services.optimizer.pools import (
    BatchedCurve,
    CobhamLatency,
    InstanceType,
    PiecewiseCurve,
    Policy,
    PriorityModel,
    QueueingCurve,
    ServiceClass,
    predicted_latency_s,
    solve_pool,
)
from services.perfmodel.servicetime import ReplicaModel

REPO = Path(__file__).resolve().parents[2]
SEED000 = REPO / "samples" / "qos" / "seed-000"
SEED003 = REPO / "samples" / "qos" / "seed-003"


def _qos(capsys: pytest.CaptureFixture[str], seed: Path, policy: str) -> list[dict]:
    code = main(["qos", "--instances", str(seed / "instances.json"), "--updates", str(seed / "updates.json"),
                 "--policy", policy, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    return out


def _meets_demand(update: dict) -> None:
    totals = [sum(inst[c] for inst in update["rates_rpm"]) for c in range(len(update["demand_rpm"]))]
    assert totals == pytest.approx(update["demand_rpm"], abs=1e-6)


def test_seed000_through_the_command_line_two_then_three_instances_alan_within_its_cap() -> None:
    proc = subprocess.run([sys.executable, "-m", "services.optimizer", "qos", "--instances",
                           str(SEED000 / "instances.json"), "--updates", str(SEED000 / "updates.json"), "--json"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    assert [a["time"] for a in answers] == [0, 1800]
    assert [a["status"] for a in answers] == ["OPTIMAL", "OPTIMAL"]
    assert [a["instances"] for a in answers] == [2, 3]
    for a, demand in zip(answers, ([10, 14], [15, 21]), strict=True):
        assert len(a["rates_rpm"]) == a["instances"]
        assert all(inst[0] <= 5.288045 for inst in a["rates_rpm"])  # Alan's rmax(10 s) on every instance
        assert all(sum(inst) <= 12 + 1e-9 for inst in a["rates_rpm"])  # A = 12 RPM
        assert a["demand_rpm"] == demand
        _meets_demand(a)
        assert all(lat <= bound + 1e-9 for lat, bound in zip(a["latency_s"], a["latency_bound_s"], strict=True))


def test_seed000_fcfs_needs_four_then_five(capsys: pytest.CaptureFixture[str]) -> None:
    answers = _qos(capsys, SEED000, "fcfs")
    assert [a["instances"] for a in answers] == [4, 5]
    for a in answers:
        _meets_demand(a)
        # under FCFS every instance carrying Alan keeps its whole load within Alan's rmax
        assert all(sum(inst) <= 5.288045 for inst in a["rates_rpm"] if inst[0] > 0)


@pytest.mark.parametrize(("policy", "instances"), [("priority", 3), ("fcfs", 5)])
def test_seed003_priority_three_fcfs_five(capsys: pytest.CaptureFixture[str], policy: str, instances: int) -> None:
    [answer] = _qos(capsys, SEED003, policy)
    assert answer["instances"] == instances
    _meets_demand(answer)
    assert all(lat <= bound + 1e-9 for lat, bound in zip(answer["latency_s"], answer["latency_bound_s"], strict=True))


def test_text_output_lists_every_instance_rate_per_class(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qos", "--instances", str(SEED000 / "instances.json"), "--updates",
                 str(SEED000 / "updates.json")]) == 0
    out = capsys.readouterr().out
    assert "time 0: OPTIMAL, 2 instances (priority)" in out
    assert "time 1800: OPTIMAL, 3 instances (priority)" in out
    assert out.count("  instance ") == 5 and "Alan 5.000000, Noel 7.000000 RPM" in out


def test_the_rmax_of_the_seed_curves() -> None:
    seed003 = BatchedCurve(150, 25)
    assert [round(seed003.rmax_rpm(L), 3) for L in (204, 301, 352)] == [6.618, 12.542, 14.347]
    seed000 = json.loads((SEED000 / "instances.json").read_text())["instances"][0]["curve"]["points"]
    curve = PiecewiseCurve(tuple(map(tuple, seed000)))
    assert curve.rmax_rpm(10) == pytest.approx(5.288045, abs=1e-12)
    assert curve.rmax_rpm(40) >= 12
    assert curve.latency_s(13) == math.inf and curve.rmax_rpm(3) == 0.0


def test_too_few_replicas_leaves_the_least_important_class_unmet_and_exits_nonzero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.loads((SEED000 / "instances.json").read_text())
    spec["instances"][0]["count"] = 2
    (tmp_path / "i.json").write_text(json.dumps(spec))
    code = main(["qos", "--instances", str(tmp_path / "i.json"), "--updates", str(SEED000 / "updates.json"),
                 "--json"])
    answers = json.loads(capsys.readouterr().out)
    assert code == 1
    assert answers[0]["unmet_rpm"] == [0, 0]
    # 2 replicas carry 24 RPM and Alan at most 2 x 5.288045 of it: Alan first, Noel the remaining capacity
    assert answers[1]["instances"] == 2
    assert answers[1]["unmet_rpm"] == pytest.approx([15 - 2 * 5.288045, 21 - (24 - 2 * 5.288045)], abs=1e-6)


def test_types_mixed_when_cheaper_than_either_alone() -> None:
    slow = InstanceType("slow", 6, BatchedCurve(1, 8), cost=1)  # rmax(4 s) = 6
    fast = InstanceType("fast", 20, BatchedCurve(0.5, 30), cost=2.5)
    classes = [ServiceClass("a", 12, 4), ServiceClass("b", 10, 30)]
    only_slow = solve_pool([slow], classes, Policy.PRIORITY)
    only_fast = solve_pool([fast], classes, Policy.PRIORITY)
    mixed = solve_pool([slow, fast], classes, Policy.PRIORITY)
    assert (only_slow.replicas, only_fast.replicas) == ({"slow": 4}, {"fast": 2})
    assert mixed.replicas == {"slow": 1, "fast": 1} and mixed.cost == 3.5
    for answer in (only_slow, only_fast, mixed):
        assert answer.unmet_rpm == (0, 0)
        for rep in answer.instances:
            assert sum(rep.rates_rpm) <= (6 if rep.instance_type == "slow" else 20) + 1e-9
            assert all(lat is None or lat <= c.latency_s + 1e-9
                       for lat, c in zip(rep.latency_s, classes, strict=True))


@pytest.mark.parametrize(("body", "field"), [
    ({"instances": [{"name": "x", "capacity_rpm": 12, "curve": {"points": [[0, 5], [3, 4]]}}]}, "instances[0].curve"),
    ({"instances": [{"name": "x", "capacity_rpm": -1, "curve": {"batched": {"t0_s": 1, "lambda_rpm": 2}}}]},
     "capacity_rpm"),
    ({"instances": [{"name": "x", "capacity_rpm": 12}]}, "needs a 'curve' or 'perfParms'"),
    ({"instances": [{"name": "x", "capacity_rpm": 12, "count": 1.5,
                     "curve": {"batched": {"t0_s": 1, "lambda_rpm": 2}}}]}, "instances[0].count"),
])
def test_bad_instances_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: dict,
                                            field: str) -> None:
    (tmp_path / "i.json").write_text(json.dumps(body))
    assert main(["qos", "--instances", str(tmp_path / "i.json"), "--updates", str(SEED000 / "updates.json")]) == 1
    assert field in capsys.readouterr().err


def test_queueing_model_curve_from_perfparms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"instances": [{"name": "a100", "perfParms": {"alpha": 20, "beta": 0.1, "gamma": 0.0005},
                           "in_tokens": 128, "out_tokens": 64, "max_batch": 16}]}
    (tmp_path / "i.json").write_text(json.dumps(spec))
    (tmp_path / "u.json").write_text(json.dumps({"updates": [{"time": 0, "request_rates": [60, 120],
                                                              "latencies": [2.5, 6]}]}))
    prio = _qos_files(capsys, tmp_path, "priority")
    fcfs = _qos_files(capsys, tmp_path, "fcfs")
    assert 0 < prio["instances"] <= fcfs["instances"]
    _meets_demand(prio)
    assert all(lat <= b for lat, b in zip(prio["latency_s"], prio["latency_bound_s"], strict=True))


def _qos_files(capsys: pytest.CaptureFixture[str], folder: Path, policy: str) -> dict:
    assert main(["qos", "--instances", str(folder / "i.json"), "--updates", str(folder / "u.json"),
                 "--policy", policy, "--json"]) == 0
    return json.loads(capsys.readouterr().out)[0]


def test_an_instances_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "i.json").write_bytes(b'{"instances": ["\xff"]}')
    assert main(["qos", "--instances", str(tmp_path / "i.json"), "--updates", str(SEED000 / "updates.json")]) == 1
    err = capsys.readouterr().err
    assert "i.json" in err and "not UTF-8 text" in err and "Traceback" not in err


def test_conservative_model_is_cobhams_formula_on_an_mm1_curve() -> None:
    # T(r) = T0 / (1 - r / mu) is M/M/1 with mean service T0: non-preemptive priority (Cobham) gives class c the
    # wait T0 rho / ((1 - s_{c-1}) (1 - s_c)), rho the total load, s_c the load of classes 1..c
    t0, mu = 2.0, 30.0
    model = CobhamLatency.of(BatchedCurve(t0, mu), mu)
    rates = (6.0, 9.0, 3.0)
    rho = sum(rates) / mu
    expected, before = [], 0.0
    for rate in rates:
        expected.append(t0 + t0 * rho / ((1 - before / mu) * (1 - (before + rate) / mu)))
        before += rate
    assert model.latency_s(rates) == pytest.approx(expected, rel=5e-3)
    # never below the prefix form, and above it for every class once lower classes carry load
    prefix = predicted_latency_s(BatchedCurve(t0, mu), rates, Policy.PRIORITY)
    assert all(c > p for c, p in zip(model.latency_s(rates), prefix, strict=True))
    # the top class alone: Cobham is the FCFS curve at its own rate
    assert model.latency_s((6.0, 0.0))[0] == pytest.approx(BatchedCurve(t0, mu).latency_s(6.0), rel=5e-3)
    assert model.latency_s((6.0, 0.0))[1] is None


def test_conservative_cap_is_the_largest_prefix_within_the_bound() -> None:
    model = CobhamLatency.of(BatchedCurve(2.0, 30.0), 30.0)
    cap = model.prefix_cap_rpm(6.0, load_rpm=20.0, above_rpm=5.0)
    assert 5.0 < cap < 20.0
    lat = model.latency_s((5.0, cap - 5.0, 20.0 - cap))[1]
    assert lat == pytest.approx(6.0, rel=1e-2) and lat <= 6.0 * (1 + 1e-9)
    assert model.prefix_cap_rpm(1.0, 0.0, 0.0) == 0.0  # below the in-service time: nothing fits


def _sim_type(model: PriorityModel) -> InstanceType:
    curve = QueueingCurve(ReplicaModel(PerfParms(34, 0.02, 0.0002), 128, 125, 1, 100, ServiceModel.V1, out_c2=1.0))
    return InstanceType("replica", curve.max_rate_rpm(), curve, 1.0, 8, model)


def test_conservative_pool_keeps_every_class_within_its_bound_where_the_prefix_form_does_not() -> None:
    classes = [ServiceClass("Alan", 10, 10), ServiceClass("Noel", 14, 40)]
    cons = solve_pool([_sim_type(PriorityModel.CONSERVATIVE)], classes)
    prefix = solve_pool([_sim_type(PriorityModel.PREFIX)], classes)
    assert cons.status == prefix.status == "OPTIMAL" and not any(cons.unmet_rpm)
    model = CobhamLatency.of(_sim_type(PriorityModel.PREFIX).curve, _sim_type(PriorityModel.PREFIX).capacity_rpm)
    # the answer's own predictions are Cobham's, within bounds on every replica
    for rep in cons.instances:
        assert rep.latency_s == pytest.approx(model.latency_s(rep.rates_rpm))
        assert all(v <= c.latency_s for v, c in zip(rep.latency_s, classes, strict=True))
    # the prefix answer (2 replicas) leaves Noel beyond 40 s under Cobham: the conservative one needs more
    assert prefix.count == 2 and cons.count > prefix.count
    assert model.latency_s(prefix.instances[0].rates_rpm)[1] > 40
    totals = [sum(r.rates_rpm[c] for r in cons.instances) for c in range(2)]
    assert totals == pytest.approx([10, 14])


def test_conservative_model_on_points_is_refused_and_perfparms_default_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"instances": [{"name": "m", "capacity_rpm": 12, "priority_model": "conservative",
                           "curve": {"points": [[0, 4], [12, 24]]}}]}
    (tmp_path / "i.json").write_text(json.dumps(spec))
    assert main(["qos", "--instances", str(tmp_path / "i.json"), "--updates", str(SEED000 / "updates.json")]) == 1
    assert "instances[0].priority_model: conservative needs perfParms or a batched curve" in capsys.readouterr().err
    perf = {"name": "r", "perfParms": {"alpha": 34, "beta": 0.02, "gamma": 0.0002}, "in_tokens": 128,
            "out_tokens": 125, "max_batch": 1, "out_tokens_c2": 1}
    (tmp_path / "u.json").write_text(json.dumps({"updates": [{"time": 0, "request_rates": [10, 14],
                                                              "latencies": [10, 40]}]}))
    counts = {}
    for model in (None, "prefix", "conservative"):
        (tmp_path / "i.json").write_text(json.dumps({"instances": [perf if model is None
                                                                   else {**perf, "priority_model": model}]}))
        counts[model] = _qos_files(capsys, tmp_path, "priority")["instances"]
    assert counts == {None: 3, "prefix": 2, "conservative": 3}
    (tmp_path / "i.json").write_text(json.dumps({"instances": [{**perf, "priority_model": "optimistic"}]}))
    assert main(["qos", "--instances", str(tmp_path / "i.json"), "--updates", str(tmp_path / "u.json")]) == 1
    assert "instances[0].priority_model: expected one of prefix, conservative, got 'optimistic'" in \
        capsys.readouterr().err
