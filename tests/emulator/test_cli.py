"""The emulator's command line (python -m emulator): readable --help, argparse-style errors for bad loadgen
arguments (exit 2), and loadgen's exit status (1 when no request completed, the report printed anyway)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from emulator.__main__ import main
from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": ROOT})


def _free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_shows_the_usage_lines_as_written() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "--duration 30 \\\n        [--stairs FROM:TO:STEP:EVERY]" in done.stdout
    assert "30         [--stairs" not in done.stdout


@pytest.mark.parametrize("stairs", ["1:2", "a:b:c:d", "1:2:3:4:5", "1:3:0:10", "1:3:-1:10", "1:3:1:0", "-1:3:1:5"])
def test_bad_stairs_is_a_usage_error_naming_the_form(stairs: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loadgen", "--url", "http://127.0.0.1:9", f"--stairs={stairs}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --stairs" in err
    assert "FROM:TO:STEP:EVERY" in err


@pytest.mark.parametrize(("flag", "value"), [("--rate", "-1"), ("--rate", "0"), ("--rate", "nan"),
                                             ("--duration", "0"), ("--duration", "-5"), ("--in", "-1"),
                                             ("--out", "0"), ("--slo-ttft", "-1"), ("--max-requests", "0")])
def test_negative_or_zero_values_are_usage_errors(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loadgen", "--url", "http://127.0.0.1:9", f"{flag}={value}"])
    assert exited.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_up_rejects_a_negative_duration(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["up", "--config", "unused.yaml", "--duration", "-1"])
    assert exited.value.code == 2
    assert "argument --duration" in capsys.readouterr().err


def test_bad_stairs_from_the_shell_has_no_traceback() -> None:
    done = _run("loadgen", "--url", "http://127.0.0.1:9", "--stairs", "1:2")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--stairs" in done.stderr and "FROM:TO:STEP:EVERY" in done.stderr


def test_loadgen_exits_1_when_no_request_completed() -> None:
    done = _run("loadgen", "--url", f"http://127.0.0.1:{_free_port()}", "--rate", "20", "--duration", "0.5",
                "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["completed"] == 0 and report["failed"] > 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no request completed" in lines[0], done.stderr


def test_loadgen_exits_0_when_requests_complete(capsys) -> None:
    server = VllmServer(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0), "m").start()
    try:
        status = main(["loadgen", "--url", server.url, "--rate", "20", "--duration", "0.5", "--out", "2",
                       "--stairs", "10:20:10:0.25"])
    finally:
        server.stop()
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["target", "sent", "done", "failed"] and set(lines[1]) == {"-", " "}
    row = lines[2].split()
    assert row[0] == "cli" and int(row[2]) > 0 and row[-1].endswith("%")
    assert all(len(cell.rpartition(".")[2]) <= 2 for cell in row[1:-1]), "rounded, not 15-digit floats"


def test_loadgen_json_report_has_rounded_numbers(capsys) -> None:
    server = VllmServer(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0), "m").start()
    try:
        status = main(["loadgen", "--url", server.url, "--rate", "20", "--duration", "0.3", "--out", "2", "--json"])
    finally:
        server.stop()
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["completed"] > 0
    assert all(len(repr(v).rpartition(".")[2]) <= 3 for v in report["ttft_ms"].values())


@pytest.mark.parametrize("policy", ["fcfs", "priority"])
def test_loadgen_sends_the_seeds_update_schedule_per_class_with_priorities(policy: str, tmp_path, capsys) -> None:
    updates = tmp_path / "updates.json"
    updates.write_text(json.dumps({"classes": ["Alan", "Noel"], "updates": [
        {"time": 0, "request_rates": [600, 600], "latencies": [10, 40]},
        {"time": 0.5, "request_rates": [1200, 0], "latencies": [10, 40]}]}))
    server = VllmServer(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0, scheduling_policy=policy), "m").start()
    try:
        status = main(["loadgen", "--url", server.url, "--updates", str(updates), "--last", "0.5", "--out", "2",
                       "--json"])
    finally:
        server.stop()
    reports = json.loads(capsys.readouterr().out)
    assert status == 0 and set(reports) == {"Alan", "Noel"}
    assert reports["Alan"]["completed"] == reports["Alan"]["sent"] > reports["Noel"]["sent"] > 0
    if policy == "priority":
        assert reports["Noel"]["completed"] == reports["Noel"]["sent"]
    else:  # Noel's requests carry priority 1, which an FCFS replica refuses (vLLM's 400)
        assert reports["Noel"]["completed"] == 0 and reports["Noel"]["errors"] == {"HTTP 400": reports["Noel"]["sent"]}
