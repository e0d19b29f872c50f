"""The emulated Kubernetes API server: HTTP/1.1 on 127.0.0.1 over a KubeStore, for the official client.

Serves discovery (/version, /api, /apis, /api/v1, /apis/GROUP/VERSION), the resources of
``emulator.kuberesources`` (list, watch, get, create, replace, patch, delete; the scale and status
subresources) and writes kubeconfig files the official ``kubernetes`` client loads. Connections are kept
alive and have TCP_NODELAY set, so a call costs about a millisecond rather than Nagle's 40 ms.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from emulator.kuberoutes import answer, discovery, route
from emulator.kubestore import BadRequestError, KubeStore, StoreError
from emulator.kubewatch import stream_watch

__all__ = ["KubeApiServer", "write_kubeconfig"]
_HEALTH = ("/healthz", "/readyz", "/livez")


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every connection thread

    def __init__(self, address: tuple[str, int], store: KubeStore, token: str | None) -> None:
        super().__init__(address, _Handler)
        self.store, self.token = store, token
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its keep-alive connection (as the kubernetes client's pool does) is normal;
        anything else is printed as the standard server does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            if self.server.stopping.is_set():
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        """Silence the per-request access log."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Serve a GET: discovery, health, list, watch or get."""
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        """Serve a POST: create."""
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        """Serve a PUT: replace."""
        self._serve("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        """Serve a PATCH: strategic-merge, merge or JSON patch."""
        self._serve("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        """Serve a DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        try:
            body = self._body()
            if not self._authorized():
                raise StoreError({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            if method == "GET" and url.path in _HEALTH:
                return self._reply(200, b"ok", "text/plain")
            document = discovery(url.path, f"{self.server.server_address[0]}:{self.server.server_address[1]}")
            if method == "GET" and document is not None:
                return self._json(200, document)
            where = route(url.path)
            if method == "GET" and where.name is None and query.get("watch") in ("true", "1"):
                return self._watch(where, query)
            code, result = answer(self.server.store, method, where, query,
                                  self.headers.get("Content-Type", ""), body)
            self._json(code, result)
        except StoreError as err:
            self._json(err.code, err.status)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as err:
            raise BadRequestError.of(f"the body of the request was not valid JSON: {err}") from err

    def _authorized(self) -> bool:
        return self.server.token is None or self.headers.get("Authorization") == f"Bearer {self.server.token}"

    def _json(self, code: int, document: Any) -> None:
        self._reply(code, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    def _reply(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _watch(self, where: Any, query: dict[str, str]) -> None:
        def begin() -> None:
            self.send_response(200, "OK")
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def send(chunk: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        try:
            stream_watch(self.server.store, where, query, begin, send, self.server.stopping)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class KubeApiServer:
    """An HTTP server on ``host`` (127.0.0.1) serving ``store`` as a Kubernetes API; port 0 picks a free one."""

    def __init__(self, store: KubeStore, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None) -> None:
        self._store, self._address, self._token = store, (host, port), token
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:41234 (after start())."""
        if self._httpd is None:
            raise RuntimeError("the Kubernetes API emulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Bind and serve in a background thread."""
        if self._httpd is not None:
            return
        self._httpd = _Server(self._address, self._store, self._token)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kubeapi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: end watches, close every connection, join the threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        with httpd.connections_lock:
            for connection in list(httpd.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_kubeconfig(path: str, server_url: str, token: str = "emulator", namespace: str = "default") -> str:
    """Write a kubeconfig for ``server_url`` (plain http, bearer ``token``) that load_kube_config accepts.

    Returns ``path``.
    """
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "inferno-emulator", "cluster": {"server": server_url}}],
        "users": [{"name": "inferno-emulator", "user": {"token": token}}],
        "contexts": [{"name": "inferno-emulator", "context": {"cluster": "inferno-emulator",
                                                             "user": "inferno-emulator", "namespace": namespace}}],
        "current-context": "inferno-emulator",
    }
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
    return path
