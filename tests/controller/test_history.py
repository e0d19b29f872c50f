"""`python -m services.controller history`: the cycle log's decisions over time, as tables."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.controller import history
from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from tests.controller.fakes import CAPACITY, STATIC, FakeClients

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cycle_log(tmp_path: Path) -> Path:
    """A cycle log of three cycles: applied, skipped (collector down), applied."""
    path = tmp_path / "cycles.jsonl"
    clients = FakeClients()
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), ControllerMetrics(), str(path))
    loop.invoke()
    clients.fail["collect"] = RuntimeError("collector down")
    loop.invoke()
    del clients.fail["collect"]
    loop.invoke()
    return path


def run(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = history.main(list(argv), environ or {}, out, err)
    return status, out.getvalue(), err.getvalue()


def test_history_prints_every_cycle_as_the_demo_table(cycle_log: Path) -> None:
    status, out, _ = run("--cycle-log", str(cycle_log))
    assert status == 0
    heads = [line for line in out.splitlines() if line.startswith("cycle ")]
    assert [h.split(":")[0] for h in heads] == ["cycle 1", "cycle 2", "cycle 3"]
    assert "skipped" in heads[1] and "collector failed: collector down" in heads[1]
    assert "server" in out and "pred ITL/SLO" in out
    assert "Premium-llama_13b  60.0" in out and "1 -> 3" in out


def test_history_of_one_server_is_one_row_per_cycle_oldest_first(cycle_log: Path) -> None:
    status, out, _ = run("--cycle-log", str(cycle_log), "--server", "Premium-llama_13b")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "server Premium-llama_13b" and lines[1].split()[:4] == ["time", "(UTC)", "cycle", "outcome"]
    rows = lines[3:]
    assert [row.split()[2:4] for row in rows] == [["1", "applied"], ["3", "applied"]], "cycle 2 collected nothing"
    assert all("G2" in row and "1 -> 3" in row and "80 !" not in row for row in rows)


def test_history_reads_the_rotated_log_first_and_keeps_the_newest_with_last(cycle_log: Path) -> None:
    lines = cycle_log.read_text().splitlines()
    Path(str(cycle_log) + ".1").write_text(lines[0] + "\n")
    cycle_log.write_text("\n".join(lines[1:]) + "\n")
    status, out, _ = run("--cycle-log", str(cycle_log), "--json")
    assert status == 0 and [json.loads(x)["cycle_id"] for x in out.splitlines()] == [1, 2, 3]
    status, out, _ = run("--cycle-log", str(cycle_log), "--json", "--last", "2")
    assert [json.loads(x)["cycle_id"] for x in out.splitlines()] == [2, 3]


def test_a_cut_short_line_is_reported_and_passed_over(cycle_log: Path) -> None:
    with open(cycle_log, "a") as handle:
        handle.write('{"cycle_id": 4, "rows": [\n')
    status, out, err = run("--cycle-log", str(cycle_log), "--json")
    assert status == 0 and len(out.splitlines()) == 3
    assert f"{cycle_log}:4: not a cycle record" in err


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--server", "nobody"], "no server 'nobody' in", id="unknown-server"),
    pytest.param(["--cycle-log", "/nonexistent/cycles.jsonl"], "no cycle log at /nonexistent/cycles.jsonl",
                 id="missing-log"),
])
def test_history_fails_clearly(cycle_log: Path, argv: list[str], message: str) -> None:
    status, out, err = run(*argv, environ={"INFERNO_CYCLE_LOG": str(cycle_log)})
    assert status == 1 and out == "" and message in err
    if "nobody" in argv:
        assert "servers: Premium-llama_13b" in err


def test_the_history_command_reads_the_cycle_log_setting_by_default(cycle_log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFERNO_CYCLE_LOG": str(cycle_log)}
    done = subprocess.run([sys.executable, "-m", "services.controller", "history", "--server", "Premium-llama_13b"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("server Premium-llama_13b\n")


def test_the_tables_show_the_model_check_with_a_mark_while_its_warning_stands() -> None:
    from services.controller.report import cycle_text

    row = {"server": "s", "model_itl_ratio": 0.98, "model_ttft_ratio": 6.85, "model_mismatch": True}
    assert "TTFT x6.8 !" in cycle_text({"cycle_id": 1, "outcome": "applied", "rows": [row]})
    assert "ITL x0.4" in cycle_text({"cycle_id": 1, "outcome": "applied", "rows": [
        {**row, "model_itl_ratio": 0.4, "model_ttft_ratio": 1.2, "model_mismatch": False}]})


def test_a_batch_capped_by_the_pods_limit_shows_what_was_applied() -> None:
    from services.controller.report import cycle_text

    row = {"server": "s", "max_batch": 608, "action": "unchanged",
           "action_reason": "batch 608 above the pod's --max-num-seqs 2: 2 applied (the pod's limit wins)"}
    assert " 608>2 " in cycle_text({"cycle_id": 1, "outcome": "applied", "rows": [row]})
