"""The controller's HTTP API on port 3300: GET /invoke, /healthz, /readyz, /metrics.

/invoke runs one cycle and answers its record as JSON: 200 when applied, 503 when skipped (nothing written;
the body says why), 504 when unconfirmed (the actuator did not answer and may have written part of the
plan), so ``curl -f`` fails on any cycle that was not applied. /readyz answers 200 only when the three gRPC
services report SERVING on their standard health service.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics

_INVOKE_STATUS = {"applied": 200, "skipped": 503, "unconfirmed": 504}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class ControllerHTTP:
    """Serves the API of ``loop`` on ``host:port`` (port 0 = a free port) in a background thread."""

    def __init__(self, loop: ControlLoop, metrics: ControllerMetrics, health: Callable[[], dict[str, str]],
                 host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"loop": loop, "metrics": metrics, "health": staticmethod(health)})
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

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/invoke":
            record = self.loop.invoke()
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

    def _send(self, status: int, body: dict[str, Any]) -> None:
        self._send_bytes(status, (json.dumps(body, indent=2) + "\n").encode(), "application/json")

    def _send_bytes(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Silence the default stderr access log; cycles log their own summary."""
