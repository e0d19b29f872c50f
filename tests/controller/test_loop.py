"""The control loop and its HTTP API over fake clients: one cycle at a time, records logged and exported."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services.controller.httpapi import ControllerHTTP
from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from tests.controller.fakes import CAPACITY, STATIC, FakeClients


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def api(tmp_path: Path):
    clients = FakeClients(actuate_s=0.02)
    metrics = ControllerMetrics()
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), metrics, str(tmp_path / "log" / "cycles.jsonl"))
    health = {"collector": "SERVING", "optimizer": "SERVING", "actuator": "SERVING"}
    http = ControllerHTTP(loop, metrics, lambda: dict(health), "127.0.0.1", 0)
    http.start()
    yield http.port, clients, health, tmp_path / "log" / "cycles.jsonl"
    http.stop()
    loop.stop()


def test_invoke_answers_the_cycle_record_as_json(api) -> None:
    port, _, _, _ = api
    status, body = get(port, "/invoke")
    record = json.loads(body)
    assert status == 200 and record["outcome"] == "applied" and record["cycle_id"] == 1
    assert record["rows"][0]["replicas"] == 3 and record["timings_ms"]["total"] >= 0
    assert record["trigger"] == "invoke"


def test_skipped_cycle_answers_503_with_the_reason(api) -> None:
    port, clients, _, _ = api
    clients.fail["optimize"] = RuntimeError("optimizer crashed")
    status, body = get(port, "/invoke")
    assert status == 503 and json.loads(body)["skip_reason"] == "optimizer failed: optimizer crashed"


def test_unconfirmed_cycle_answers_504_and_is_counted_apart(api) -> None:
    port, clients, _, _ = api
    clients.fail["actuate"] = TimeoutError("actuator timed out")
    status, body = get(port, "/invoke")
    assert status == 504 and json.loads(body)["outcome"] == "unconfirmed"
    metrics = get(port, "/metrics")[1].decode()
    assert 'inferno_cycles_total{outcome="unconfirmed"} 1.0' in metrics
    assert 'inferno_cycles_total{outcome="skipped"} 0.0' in metrics


def test_cycle_log_rotates_to_one_previous_file_at_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "cycles.jsonl"
    loop = ControlLoop(FakeClients(), lambda: (STATIC, CAPACITY), ControllerMetrics(), str(path),
                       cycle_log_max_bytes=3000)
    for _ in range(12):
        loop.invoke()
    current = [json.loads(line)["cycle_id"] for line in path.read_text().splitlines()]
    previous = [json.loads(line)["cycle_id"] for line in Path(f"{path}.1").read_text().splitlines()]
    assert path.stat().st_size <= 3000 and Path(f"{path}.1").stat().st_size <= 3000
    assert previous + current == list(range(previous[0], 13)) and current[-1] == 12
    assert not Path(f"{path}.2").exists()


def test_a_record_larger_than_the_limit_never_rotates_an_empty_log_over_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "cycles.jsonl"
    Path(f"{path}.1").write_text('{"cycle_id": 0}\n')
    path.write_text("")
    loop = ControlLoop(FakeClients(), lambda: (STATIC, CAPACITY), ControllerMetrics(), str(path),
                       cycle_log_max_bytes=10)
    loop.invoke()
    assert Path(f"{path}.1").read_text() == '{"cycle_id": 0}\n'
    assert json.loads(path.read_text())["cycle_id"] == 1


def test_ten_concurrent_invokes_all_return_and_run_one_at_a_time(api) -> None:
    port, clients, _, log_path = api
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(json.loads(get(port, "/invoke")[1])))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r["cycle_id"] for r in results) == list(range(1, 11))
    assert clients.overlaps == 0
    assert clients.calls == ["collect", "optimize", "actuate"] * 10
    assert [json.loads(line)["cycle_id"] for line in log_path.read_text().splitlines()] == list(range(1, 11))


def test_metrics_count_cycles_by_outcome_and_export_desired_replicas(api) -> None:
    port, clients, _, _ = api
    get(port, "/invoke")
    clients.fail["collect"] = RuntimeError("down")
    get(port, "/invoke")
    text = get(port, "/metrics")[1].decode()
    assert 'inferno_cycles_total{outcome="applied"} 1.0' in text
    assert 'inferno_cycles_total{outcome="skipped"} 1.0' in text
    assert ('inferno_server_desired_replicas{accelerator="G2",deployment="llama-13b",namespace="llm",'
            'server="Premium-llama_13b"} 3.0') in text
    assert "inferno_total_cost_per_hour 69.0" in text
    assert "inferno_cycle_duration_seconds_count 2.0" in text


def test_readyz_follows_the_services_health(api) -> None:
    port, _, health, _ = api
    assert get(port, "/readyz")[0] == 200
    health["optimizer"] = "UNAVAILABLE"
    status, body = get(port, "/readyz")
    assert status == 503 and json.loads(body)["services"]["optimizer"] == "UNAVAILABLE"
    assert get(port, "/healthz")[0] == 200


def test_ticker_runs_cycles_on_its_own() -> None:
    clients = FakeClients()
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), ControllerMetrics())
    loop.start_ticker(0.05)
    try:
        for _ in range(100):
            if loop.last is not None and loop.last.cycle_id >= 2:
                break
            threading.Event().wait(0.05)
        assert loop.last is not None and loop.last.cycle_id >= 2
        assert loop.last.trigger == "period" and loop.last.as_json()["trigger"] == "period"
    finally:
        loop.stop()
    assert not loop.ticking


def test_the_cycle_log_says_why_each_cycle_ran(tmp_path: Path) -> None:
    path = tmp_path / "cycles.jsonl"
    loop = ControlLoop(FakeClients(), lambda: (STATIC, CAPACITY), ControllerMetrics(), str(path))
    loop.invoke(trigger="fast path: premium: 15.0 requests waiting")
    loop.invoke(trigger="period")
    triggers = [json.loads(line)["trigger"] for line in path.read_text().splitlines()]
    assert triggers == ["fast path: premium: 15.0 requests waiting", "period"]
