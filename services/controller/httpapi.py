"""The controller's HTTP API on port 3300: GET /invoke, /healthz, /readyz, /metrics.

/invoke runs one cycle and answers its record as JSON: 200 when applied (or advised: a dry run decided and
wrote nothing), 502 when partial (applied, but some Deployments failed: named in the body), 503 when skipped
(nothing written; the body says why), 504 when unconfirmed (the actuator did not answer and may have written
part of the plan), so ``curl -f`` fails on any cycle that was not fully applied. /readyz answers 200 only
when the three gRPC services report SERVING on their standard health service.

/invoke writes Deployments, so it can require a bearer token (INFERNO_INVOKE_TOKEN_PATH, a file re-read on
every call so a rotated Secret takes effect): without ``Authorization: Bearer <token>`` it answers 401 and runs
nothing (docs/contract.md s7). /healthz, /readyz and /metrics stay open (kubelet, Prometheus).
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from services.core.redact import redact_tree
from services.runtime.config import ConfigError
from services.runtime.logs import get_logger

_log = get_logger("controller")

_INVOKE_STATUS = {"applied": 200, "partial": 502, "advised": 200, "skipped": 503, "unconfirmed": 504}


def invoke_token_reader(path: str) -> Callable[[], str] | None:
    """None for an empty ``path`` (no token required), else a function reading the token from the file (its
    content without surrounding whitespace). Raises ConfigError naming INFERNO_INVOKE_TOKEN_PATH when the file
    cannot be read or is empty now, so a mistake stops the controller at start instead of opening /invoke."""
    if not path:
        return None

    def read() -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()

    try:
        token = read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"environment variable INFERNO_INVOKE_TOKEN_PATH={path!r}: cannot read the token: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    if not token:
        raise ConfigError(f"environment variable INFERNO_INVOKE_TOKEN_PATH={path!r}: the token file is empty")
    return read


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class ControllerHTTP:
    """Serves the API of ``loop`` on ``host:port`` (port 0 = a free port) in a background thread."""

    def __init__(self, loop: ControlLoop, metrics: ControllerMetrics, health: Callable[[], dict[str, str]],
                 host: str, port: int, invoke_token: Callable[[], str] | None = None) -> None:
        handler = type("Handler", (_Handler,), {"loop": loop, "metrics": metrics, "health": staticmethod(health),
                                                "invoke_token": staticmethod(invoke_token) if invoke_token
                                                else None})
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="controller-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.server_address[1]

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    loop: ControlLoop
    metrics: ControllerMetrics
    health: Callable[[], dict[str, str]]
    invoke_token: Callable[[], str] | None = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/invoke":
            if not self._authorized():
                return
            record = self.loop.invoke(trigger="invoke")
            self._send(_INVOKE_STATUS.get(record.outcome, 503), record.as_json())
        elif path == "/healthz":
            self._send(200 if self.loop.ticking else 503, {"status": "ok" if self.loop.ticking else "ticker stopped"})
        elif path == "/readyz":
            statuses = self.health()
            ready = all(status == "SERVING" for status in statuses.values())
            self._send(200 if ready else 503, {"ready": ready, "services": statuses})
        elif path == "/metrics":
            self._send_bytes(200, self.metrics.render(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, {"error": f"no such path {path}; try /invoke, /healthz, /readyz, /metrics"})

    def _authorized(self) -> bool:
        """True when no token is required or the request carries it; else answer 401 (or 503 when the token
        file cannot be read: fail closed) and return False."""
        if self.invoke_token is None:
            return True
        try:
            token = self.invoke_token()
        except (OSError, UnicodeDecodeError) as err:
            _log.error("invoke_token_unreadable", error=str(getattr(err, "strerror", None) or err))
            self._send(503, {"error": "the /invoke token file cannot be read; nothing was run"})
            return False
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
        _log.warning("invoke_refused", client=self.client_address[0], reason="missing or wrong bearer token")
        self._send(401, {"error": "GET /invoke needs the bearer token (INFERNO_INVOKE_TOKEN_PATH) in the "
                                 "Authorization header"},
                   {"WWW-Authenticate": 'Bearer realm="inferno"'})
        return False

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(redact_tree(body), indent=2) + "\n"  # no credential in a reason or warning
        self._send_bytes(status, payload.encode(), "application/json", headers)

    def _send_bytes(self, status: int, payload: bytes, content_type: str,
                    headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Silence the default stderr access log; cycles log their own summary."""
