"""Credentials never leave in a log line, a gRPC error detail or a returned warning (issue 15)."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from services.core.redact import redact, redact_tree
from services.runtime.grpcserve import error_detail
from services.runtime.logs import redact_event


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("Prometheus at https://admin:hunter2@prom:9090/api/v1 failed",
                 "Prometheus at https://admin:***@prom:9090/api/v1 failed", id="password-in-url"),
    pytest.param("http://:tok@h", "http://:***@h", id="password-without-user"),
    pytest.param("https://prom/api?query=up&access_token=abc123&x=1", "https://prom/api?query=up&access_token=***&x=1",
                 id="token-in-query"),
    pytest.param("GET /q?password=p4ss", "GET /q?password=***", id="password-in-query"),
    pytest.param("{'Authorization': 'Bearer eyJhbGciOi.e30.sig'}", "{'Authorization': '***'}", id="header-dict"),
    pytest.param("Authorization: Basic dXNlcjpwYXNz\r\n", "Authorization: ***\r\n", id="basic-header"),
    pytest.param("sent Bearer abcdefghijklmnop", "sent Bearer ***", id="bearer-anywhere"),
    pytest.param("Set-Cookie: session=xyz", "Set-Cookie: ***", id="cookie"),
])
def test_secrets_are_replaced_and_the_rest_kept(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize("text", ["http://prom:9090/api", "https://user@prom", "bearer token file missing",
                                  "keyspace=1 monkey=2", "inferno.server.name=a"])
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_every_string_of_a_json_value_is_redacted() -> None:
    value = {"warnings": ["https://u:p@h"], "n": 3, "rows": [{"reason": "Bearer abcdefghij"}], "t": ("http://a:b@c",)}
    assert redact_tree(value) == {"warnings": ["https://u:***@h"], "n": 3, "rows": [{"reason": "Bearer ***"}],
                                  "t": ["http://a:***@c"]}


def test_a_log_line_never_carries_the_password(monkeypatch) -> None:
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(out), processors=[
        structlog.processors.format_exc_info, redact_event, structlog.processors.JSONRenderer()])
    try:
        raise ConnectionError("HTTPSConnectionPool(host='prom'): https://admin:hunter2@prom:9090 refused")
    except ConnectionError:
        logger.warning("prometheus_query_failed", url="https://admin:hunter2@prom:9090", exc_info=True)
    line = out.getvalue()
    assert "hunter2" not in line
    event = json.loads(line)
    assert event["url"] == "https://admin:***@prom:9090" and "admin:***@prom" in event["exception"]


def test_a_grpc_error_detail_is_redacted() -> None:
    detail = error_detail(RuntimeError("Prometheus https://a:topsecret@p:9090 answered 500"))
    assert "topsecret" not in detail and "https://a:***@p:9090" in detail


def test_collect_warnings_are_redacted_on_the_wire() -> None:
    from proto import collector_pb2
    from services.collector.servicer import CollectorServicer
    from services.core import model as m

    class Collector:
        def collect(self, namespaces, **options):
            return m.Collection(warnings=("Prometheus at http://u:pw123456@prom gave nothing",))

    reply = CollectorServicer(Collector()).Collect(collector_pb2.CollectRequest(), None)  # type: ignore[arg-type]
    assert list(reply.warnings) == ["Prometheus at http://u:***@prom gave nothing"]
