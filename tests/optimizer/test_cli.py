"""The optimizer command line: solve prints and writes, analyze evaluates a point, bad input exits non-zero."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from services.core.datafiles import read_solution, write_system_file
from services.core.model import SystemData
from services.optimizer.cli import main
from services.optimizer.solver import solve
from tests.optimizer.conftest import SAMPLES

SMALL = os.path.join(SAMPLES, "small")
LARGE = os.path.join(SAMPLES, "large")


def test_solve_prints_every_server_with_slos_total_cost_and_capacity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", SMALL, "--solver", "greedy"]) == 0
    out = capsys.readouterr().out
    assert "Bronze-granite_13b    Bronze   granite_13b   G2           3         38     69.00" in out
    assert "425.17 (2000)" in out
    assert "total cost per hour: 39743.00" in out
    assert "G2 441/512" in out


def test_solve_by_default_answers_with_the_exact_solver_cheaper_than_the_published_solution(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", SMALL, "--service-model", "v0.3"]) == 0
    out = capsys.readouterr().out
    assert "total cost per hour: 35767.00   allocated 15, unallocated 0   solver exact" in out
    assert "solver exact, optimal, objective 39343.70/h" in out
    assert "greedy objective 43717.30/h; served per priority: p1 5, p2 5, p3 5" in out


def test_solve_time_limit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", SMALL, "--time-limit", "0"]) == 1
    assert "--time-limit must be a number of seconds > 0, got 0.0" in capsys.readouterr().err


def test_solve_on_the_large_set_allocates_all_27_servers_at_total_cost_27007(
        large_system: SystemData, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--data-dir", LARGE, "--solver", "greedy"]) == 0
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
    assert main(["solve", "--system-data", str(path), "--solver", "greedy"]) == 0
    assert "total cost per hour: 39743.00" in capsys.readouterr().out


def test_analyze_reports_the_worked_example_point(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", "--data-dir", SMALL, "--model", "granite_13b", "--accelerator", "G2", "--rpm", "120",
            "--in-tokens", "128", "--out-tokens", "1024", "--replicas", "3", "--service-class", "Bronze",
            "--service-model", "v0.3"]
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


GRANITE_G2 = ["analyze", "--data-dir", SMALL, "--model", "granite_13b", "--accelerator", "G2",
              "--in-tokens", "128", "--out-tokens", "1024"]


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param(["--itl", "-5"], "--itl must be >= 0 (0 means no target), got -5.0", id="itl"),
    pytest.param(["--ttft", "-1"], "--ttft must be >= 0 (0 means no target), got -1.0", id="ttft"),
    pytest.param(["--tps", "-100"], "--tps must be >= 0 (0 means no target), got -100.0", id="tps"),
    pytest.param(["--itl", "nan"], "--itl must be >= 0 (0 means no target), got nan", id="itl-nan"),
])
def test_analyze_rejects_a_negative_target_naming_the_flag(extra: list[str], message: str, capsys) -> None:
    assert main([*GRANITE_G2, "--rpm", "120", *extra]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_analyze_unknown_service_class_is_named_with_the_known_ones(capsys) -> None:
    assert main([*GRANITE_G2, "--rpm", "120", "--service-class", "Gold"]) == 1
    captured = capsys.readouterr()
    assert "unknown service class 'Gold' (known: Bronze, Free, Premium)" in captured.err
    assert "has no target" not in captured.err and captured.out == ""


def test_analyze_known_class_without_a_target_for_the_model_still_says_so(capsys) -> None:
    argv = ["analyze", "--data-dir", SMALL, "--model", "nope", "--accelerator", "G2", "--rpm", "1",
            "--in-tokens", "1", "--out-tokens", "1", "--service-class", "Bronze"]
    assert main(argv) == 1
    assert "no performance data for model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("rpm", ["0", "120"])
def test_analyze_always_prints_replicas_needed(rpm: str, capsys) -> None:
    assert main([*GRANITE_G2, "--rpm", rpm, "--service-class", "Bronze", "--service-model", "v0.3"]) == 0
    out = capsys.readouterr().out
    assert f"replicas needed:           {'0' if rpm == '0' else '3'}\n" in out


def test_analyze_unreachable_targets_say_no_replica_count_helps(capsys) -> None:
    assert main([*GRANITE_G2, "--rpm", "120", "--ttft", "1"]) == 0
    assert "replicas needed:           none possible (targets unreachable)" in capsys.readouterr().out


def test_analyze_throughput_target_replaces_rpm_and_says_so(capsys) -> None:
    # Inferno's slo-tps: Lambda = tps / K; 512 tokens/s over 1024 out tokens = 0.5 req/s = 30 req/min.
    assert main([*GRANITE_G2, "--rpm", "120", "--tps", "512"]) == 0
    out = capsys.readouterr().out
    assert ("total arrival rate:        30.000 req/min from the throughput target (512 tokens/s / 1024 out tokens); "
            "--rpm 120 ignored") in out
    assert "arrival rate per replica:  30.000 req/min  (1 replica(s))" in out


def test_analyze_without_throughput_target_uses_rpm_and_prints_no_note(capsys) -> None:
    assert main([*GRANITE_G2, "--rpm", "120"]) == 0
    out = capsys.readouterr().out
    assert "from the throughput target" not in out
    assert "arrival rate per replica:  120.000 req/min" in out


def test_analyze_help_says_tps_replaces_rpm(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a target > 0 (from --tps or the class) REPLACES --rpm" in text
    assert "ignored when a throughput target applies" in text


def test_solve_output_into_a_missing_directory_fails_before_solving(tmp_path, capsys) -> None:
    target = tmp_path / "nonexistent" / "x.json"
    assert main(["solve", "--data-dir", SMALL, "--output", str(target)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing solved, no table
    assert f"--output '{target}': directory '{target.parent}' does not exist" in captured.err
    assert ".tmp" not in captured.err
    assert not target.parent.exists()


def test_solve_output_that_is_a_directory_fails_before_solving(tmp_path, capsys) -> None:
    assert main(["solve", "--data-dir", SMALL, "--output", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"--output '{tmp_path}' is a directory" in captured.err


def test_solve_output_relative_to_the_working_directory(tmp_path, monkeypatch, small_system: SystemData) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "--data-dir", os.path.abspath(SMALL), "--output", "solution.json"]) == 0
    assert read_solution(str(tmp_path / "solution.json")).allocations.keys() == \
        solve(small_system).solution.allocations.keys()


def test_tolerated_bad_values_warn_on_stderr_and_fail_in_strict_mode(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    for path in data.iterdir():
        path.chmod(0o644)
    classes = json.loads((data / "serviceclass-data.json").read_text())
    classes["serviceClasses"][0]["priority"] = -3
    (data / "serviceclass-data.json").write_text(json.dumps(classes))
    assert main(["solve", "--data-dir", str(data)]) == 0
    assert ("warning: serviceclass-data.json: $.serviceClasses[0].priority: priority -3 outside 1..100"
            in capsys.readouterr().err)
    assert main(["solve", "--data-dir", str(data), "--strict"]) == 1
    captured = capsys.readouterr()
    assert "(strict mode)" in captured.err and captured.out == ""


QA = ["analyze", "--alpha", "12", "--beta", "0.05", "--gamma", "0.0005", "--max-batch", "48", "--rpm", "180",
      "--in-tokens", "128", "--out-tokens", "512", "--itl", "20", "--ttft", "60", "--service-model", "v0.7"]
"""queue-analysis's example server, perfParms given directly (no data files)."""


def test_analyze_takes_perfparms_directly_and_reports_both_per_target_rates(capsys) -> None:
    assert main([*QA, "--queue-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "model on accelerator (perfParms given): batch 48, queue 128, model v0.7" in out
    ttft = float(out.split("rate meeting TTFT:")[1].split()[0])
    itl = float(out.split("rate meeting ITL:")[1].split()[0])
    sized = float(out.split("max rate meeting targets:")[1].split()[0])
    assert sized == pytest.approx(min(ttft, itl), rel=1e-9)
    assert "rate meeting tps:          no target" in out
    assert "optimal concurrency:       48 at" in out and "ITL bound 31, prefill bound 164" in out


def test_analyze_json_has_the_metrics_at_the_sized_rate_within_the_binding_target(capsys) -> None:
    assert main([*QA, "--queue-size", "128", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["batch"], result["queue"], result["service_model"]) == (48, 128, "v0.7")
    assert result["sized_rate_rpm"] == pytest.approx(min(result["rate_meeting_ttft_rpm"],
                                                         result["rate_meeting_itl_rpm"]), rel=1e-9)
    at = result["at_sized_rate"]
    assert at["ttft_ms"] <= 60 * (1 + 1e-6) and at["itl_ms"] <= 20 * (1 + 1e-6)
    assert max(at["ttft_ms"] / 60, at["itl_ms"] / 20) == pytest.approx(1.0, abs=1e-5)  # one target binds
    assert at["arrival_rate_rpm"] == pytest.approx(result["sized_rate_rpm"])
    assert result["replicas_needed"] == 2 and result["point"]["arrival_rate_rpm"] == pytest.approx(180.0)
    assert result["optimal_concurrency"]["batch"] == 48
    assert result["fewest_replicas_batch"] <= 48
    assert result["rate_meeting_tps_rpm"] == "no target"


def test_analyze_queue_size_changes_the_model(capsys) -> None:
    assert main([*QA, "--queue-size", "0", "--json"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert main([*QA, "--queue-size", "400", "--json"]) == 0
    large = json.loads(capsys.readouterr().out)
    assert (small["queue"], large["queue"]) == (0, 400)
    assert small["point"]["blocking"] > large["point"]["blocking"]


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--alpha", "12", "--rpm", "1", "--in-tokens", "1", "--out-tokens", "1"],
                 "--alpha, --beta and --gamma go together", id="partial-perfparms"),
    pytest.param(["--rpm", "1", "--in-tokens", "1", "--out-tokens", "1"],
                 "give --data-dir or --system-data", id="no-source"),
    pytest.param([*QA[1:], "--queue-size", "-1"], "--queue-size must be >= 0, got -1", id="negative-queue"),
    pytest.param([*QA[1:], "--max-batch", "0"], "--max-batch must be >= 1, got 0", id="zero-max-batch"),
])
def test_analyze_refuses_incomplete_or_bad_input(argv: list[str], message: str, capsys) -> None:
    assert main(["analyze", *argv]) == 1
    assert message in capsys.readouterr().err
