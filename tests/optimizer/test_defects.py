"""Regressions for the optimizer defects of issue 16: each fails on the code before its fix."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from proto import optimizer_pb2, optimizer_pb2_grpc
from services.core.datafiles import load_system_dir
from services.core.errors import DataFileError
from services.core.model import Allocation, OptimizerSettings, SaturationPolicy, ServiceModel, SolverKind
from services.optimizer.candidates import build_candidates
from services.optimizer.cli import main
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.optimizer.solver import SolverDefaults, solve
from services.runtime import convert
from services.runtime.grpcserve import build_server
from tests.optimizer.conftest import SAMPLES, server, tiny_system

SOLVERS = [pytest.param(SolverDefaults(SolverKind.EXACT), id="exact"),
           pytest.param(SolverDefaults(SolverKind.GREEDY), id="greedy")]
RR = OptimizerSettings(saturation_policy=SaturationPolicy.ROUND_ROBIN, service_model=ServiceModel.V03)


@pytest.fixture(scope="module")
def stub():
    grpc_server, port, _ = build_server(register(OptimizerServicer()), [SERVICE_NAME], "127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield optimizer_pb2_grpc.OptimizerServiceStub(channel)
    grpc_server.stop(None)


@pytest.mark.parametrize("mode", SOLVERS)
def test_a_fractional_average_of_output_tokens_is_sized_not_a_division_by_zero(mode: SolverDefaults) -> None:
    solution = solve(tiny_system([server("a", rpm=60, out_tokens=0.5)]), mode).solution
    alloc = solution.allocations["a"]
    assert alloc.num_replicas >= 1 and alloc.accelerator and not alloc.saturated


def test_a_fractional_average_of_output_tokens_is_answered_over_grpc(stub) -> None:
    system = tiny_system([server("a", rpm=60, out_tokens=0.5)])
    reply = stub.Optimize(optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(system)), timeout=30)
    assert [a.server_name for a in reply.allocations] == ["a"]


@pytest.mark.parametrize("mode", SOLVERS)
def test_an_idle_servers_partial_allocation_keeps_its_own_figures_not_another_models_chain(
        mode: SolverDefaults) -> None:
    busy = server("busy", rpm=120)
    idle = server("idle", rpm=0, cls="Low", min_replicas=3)
    solution = solve(tiny_system([busy, idle], capacity={"G2": 5, "L4": 0}, settings=RR), mode).solution
    assert solution.allocations["busy"].num_replicas == 3
    alloc = solution.allocations["idle"]
    assert (alloc.accelerator, alloc.num_replicas, alloc.cost_per_hour) == ("G2", 2, 46.0)
    assert (alloc.itl_ms, alloc.ttft_ms, alloc.saturated, alloc.unserved_rate_rpm) == (0.0, 0.0, False, 0.0)


@pytest.mark.parametrize("mode", SOLVERS)
def test_when_every_server_is_idle_partial_allocations_are_kept_with_their_cards(mode: SolverDefaults) -> None:
    system = tiny_system([server("idle", rpm=0, min_replicas=3)], capacity={"G2": 2, "L4": 0}, settings=RR)
    solution = solve(system, mode).solution
    assert solution.allocations["idle"].num_replicas == 2
    assert "idle" not in solution.unallocated


@pytest.mark.parametrize("mode", SOLVERS)
def test_an_idle_server_without_minimum_gets_an_empty_allocation(mode: SolverDefaults) -> None:
    system = tiny_system([server("idle", rpm=0, current=Allocation("L4", 3, 16, 18.0))])
    alloc = solve(system, mode).solution.allocations["idle"]
    assert alloc.is_empty
    assert (alloc.accelerator, alloc.num_replicas, alloc.max_batch, alloc.cost_per_hour) == ("", 0, 0, 0.0)


def _without_model(tmp_path: Path, model: str) -> Path:
    target = tmp_path / "small"
    shutil.copytree(Path(SAMPLES) / "small", target)
    path = target / "model-data.json"
    data = json.loads(path.read_text())
    data["models"] = [m for m in data["models"] if m["name"] != model]
    path.write_text(json.dumps(data))
    return target


def test_a_model_without_performance_data_leaves_its_servers_unallocated_in_the_cli(tmp_path: Path, capsys) -> None:
    directory = _without_model(tmp_path, "llama_70b")
    assert main(["solve", "--data-dir", str(directory)]) == 0
    captured = capsys.readouterr()
    assert "model 'llama_70b' has no performance data: the server stays unallocated" in captured.err
    rows = [line for line in captured.out.splitlines() if "llama_70b" in line]
    assert len(rows) == 3
    assert all("UNALLOCATED: no performance data for model 'llama_70b'" in row for row in rows)
    assert "allocated 12, unallocated 3" in captured.out


def test_the_same_servers_get_the_same_reason_over_grpc(tmp_path: Path, stub) -> None:
    system = load_system_dir(str(_without_model(tmp_path, "llama_70b"))).system
    reply = stub.Optimize(optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(system)), timeout=30)
    reasons = {u.server_name: u.reason for u in reply.unallocated}
    assert reasons == {name: "no performance data for model 'llama_70b'"
                       for name in ("Bronze-llama_70b", "Free-llama_70b", "Premium-llama_70b")}


def test_strict_mode_still_refuses_a_model_without_performance_data(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"servers\[\d+\].model: model 'llama_70b' has no performance data"):
        load_system_dir(str(_without_model(tmp_path, "llama_70b")), strict=True)


@pytest.mark.parametrize("mode", SOLVERS)
def test_the_unallocated_reason_names_every_candidate_and_why_the_others_are_none(mode: SolverDefaults) -> None:
    system = tiny_system([server("a")], capacity={"G2": 1, "L4": 2}, itl_ms=45.0)
    cs = build_candidates(replace(system, optimizer=replace(system.optimizer, solver=mode.solver)))
    assert set(cs.dropped["a"]) == {"L4"}  # L4's ITL cannot reach 45 ms
    reason = solve(system, mode).solution.unallocated["a"]
    assert reason.startswith("insufficient capacity: ")
    for candidate in cs.options["a"]:
        left = {"G2": 1, "L4": 2}[candidate.accelerator_type]
        assert (f"{candidate.accelerator} needs {candidate.units} {candidate.accelerator_type} "
                f"({candidate.num_replicas} replicas, batch {candidate.max_batch}), {left} left") in reason
    assert reason.endswith("not candidates: L4: SLOs unreachable")
