"""The optimizer command line: solve prints and writes, analyze evaluates a point, bad input exits non-zero."""

from __future__ import annotations

import os

import pytest

from services.common.datafiles import read_solution, write_system_file
from services.common.model import SystemData
from services.optimizer.cli import main
from services.optimizer.solver import solve
from tests.optimizer.conftest import SAMPLES

SMALL = os.path.join(SAMPLES, "small")
LARGE = os.path.join(SAMPLES, "large")


def test_solve_prints_every_server_with_slos_total_cost_and_capacity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", SMALL]) == 0
    out = capsys.readouterr().out
    assert "Bronze-granite_13b    Bronze   granite_13b   G2           3         38     69.00" in out
    assert "425.17 (2000)" in out
    assert "total cost per hour: 39743.00" in out
    assert "G2 441/512" in out


def test_solve_on_the_large_set_allocates_all_27_servers_at_total_cost_27007(
        large_system: SystemData, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", LARGE]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(s.name for s in large_system.servers)
    assert len(names) == 27
    rows = [line for line in lines if line.split(" ", 1)[0] in names]
    assert sorted(row.split()[0] for row in rows) == names
    for row in rows:
        cells = row.split()
        assert cells[3] != "-" and int(cells[4]) >= 1, row
        assert "UNALLOCATED" not in row and "saturated" not in row and "!" not in row, row
    assert "total cost per hour: 27007.00   allocated 27, unallocated 0   solver greedy" in lines


def test_solve_output_writes_a_solution_file_that_reads_back(tmp_path, small_system: SystemData) -> None:
    target = tmp_path / "solution-data.json"
    assert main(["solve", "--data-dir", SMALL, "--output", str(target)]) == 0
    assert read_solution(str(target)).allocations.keys() == solve(small_system).solution.allocations.keys()


def test_solve_reads_one_system_data_file(tmp_path, small_system: SystemData, capsys) -> None:
    path = tmp_path / "system-data.json"
    write_system_file(str(path), small_system)
    assert main(["solve", "--system-data", str(path)]) == 0
    assert "total cost per hour: 39743.00" in capsys.readouterr().out


def test_analyze_reports_the_worked_example_point(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", "--data-dir", SMALL, "--model", "granite_13b", "--accelerator", "G2", "--rpm", "120",
            "--in-tokens", "128", "--out-tokens", "1024", "--replicas", "3", "--service-class", "Bronze"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ITL:                       36.4197 ms" in out
    assert "TTFT:                      425.1662 ms" in out
    assert "max rate meeting targets:  43.291 req/min per replica" in out
    assert "replicas needed:           3" in out


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["solve", "--data-dir", "/nonexistent"], "file not found", id="missing-dir"),
    pytest.param(["analyze", "--data-dir", SMALL, "--model", "nope", "--accelerator", "G2", "--rpm", "1",
                  "--in-tokens", "1", "--out-tokens", "1"], "no performance data for model 'nope'", id="unknown-model"),
    pytest.param(["analyze", "--data-dir", SMALL, "--model", "granite_13b", "--accelerator", "G2", "--rpm", "-1",
                  "--in-tokens", "1", "--out-tokens", "1"], "--rpm must be >= 0, got -1.0", id="negative-rate"),
])
def test_bad_input_exits_non_zero_with_the_message_on_stderr(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
