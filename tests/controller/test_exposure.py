"""What the controller exposes (issue 15): GET /invoke behind an optional bearer token, credentials redacted in
the /invoke answer and the cycle log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from services.controller.httpapi import ControllerHTTP, invoke_token_reader
from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from services.runtime.config import ConfigError
from tests.controller.fakes import CAPACITY, STATIC, FakeClients

TOKEN = "s3cr3t-token-0123456789"


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}"), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def api(tmp_path: Path, token_file: Path):
    clients = FakeClients()
    metrics = ControllerMetrics()
    log = tmp_path / "cycles.jsonl"
    loop = ControlLoop(clients, lambda: (STATIC, CAPACITY), metrics, str(log))
    http = ControllerHTTP(loop, metrics, lambda: {"collector": "SERVING"}, "127.0.0.1", 0,
                          invoke_token=invoke_token_reader(str(token_file)))
    http.start()
    yield http.port, clients, log
    http.stop()
    loop.stop()


def test_invoke_without_the_token_is_401_and_runs_no_cycle(api) -> None:
    port, clients, log = api
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        status, body, reply_headers = get(port, "/invoke", headers)
        assert status == 401 and "needs the bearer token" in body["error"]
        assert reply_headers["WWW-Authenticate"] == 'Bearer realm="inferno"'
    assert clients.calls == [] and not log.exists()


def test_invoke_with_the_token_runs_the_cycle(api) -> None:
    port, clients, _ = api
    status, body, _ = get(port, "/invoke", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["outcome"] == "applied"
    assert "collect" in clients.calls


def test_probes_and_metrics_need_no_token(api) -> None:
    port, _, _ = api
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/readyz")[0] == 200


def test_a_rotated_token_takes_effect_without_a_restart(api, token_file: Path) -> None:
    port, _, _ = api
    token_file.write_text("rotated-token-abcdefgh")
    assert get(port, "/invoke", {"Authorization": f"Bearer {TOKEN}"})[0] == 401
    assert get(port, "/invoke", {"Authorization": "Bearer rotated-token-abcdefgh"})[0] == 200


def test_an_unreadable_token_file_fails_closed(api, token_file: Path) -> None:
    port, clients, _ = api
    token_file.unlink()
    status, body, _ = get(port, "/invoke", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 503 and "nothing was run" in body["error"]
    assert clients.calls == []


@pytest.mark.parametrize(("content", "message"), [
    pytest.param(None, "cannot read the token", id="missing"),
    pytest.param("  \n", "the token file is empty", id="empty"),
])
def test_a_missing_or_empty_token_file_stops_the_controller_at_start(tmp_path: Path, content, message) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"INFERNO_INVOKE_TOKEN_PATH='{path}': {message}"):
        invoke_token_reader(str(path))


def test_no_token_path_means_no_token() -> None:
    assert invoke_token_reader("") is None


def test_a_password_in_a_warning_is_redacted_in_the_answer_and_the_cycle_log(api) -> None:
    port, clients, log = api
    clients.collection = replace(clients.collection,
                                 warnings=("Prometheus at https://admin:hunter2@prom:9090 gave no usable answer",))
    status, body, _ = get(port, "/invoke", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    text = json.dumps(body) + log.read_text()
    assert "hunter2" not in text
    assert "https://admin:***@prom:9090" in json.dumps(body["warnings"])


def test_a_failed_deployment_makes_the_cycle_partial_and_invoke_answer_502(api) -> None:
    """Issue 15: a scale that failed after others were written is no longer a 200 'applied'."""
    port, clients, log = api
    from services.core import model as m

    failed = m.ActuationResult("Premium-llama_13b", m.KubeRef("llm", "llama-13b"), m.ActuationOutcome.FAILED,
                               "replicas 1 -> 3 written, labels / pod template not: Kubernetes API answered 500", 1, 3)
    clients.actuate = lambda solved, collected, dry_run, notices=(): [failed]  # type: ignore[method-assign]
    status, body, _ = get(port, "/invoke", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 502 and body["outcome"] == "partial"
    assert body["skip_reason"] == ("1 of 1 Deployment(s) failed: llm/llama-13b: replicas 1 -> 3 written, labels / "
                                   "pod template not: Kubernetes API answered 500")
    assert json.loads(log.read_text().splitlines()[-1])["outcome"] == "partial"
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'inferno_cycles_total{outcome="partial"} 1.0' in metrics
