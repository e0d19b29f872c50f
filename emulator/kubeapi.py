"""The emulated Kubernetes API server: HTTP/1.1 on 127.0.0.1 over a KubeStore, for the official client.

Serves discovery (/version, /api, /apis, /api/v1, /apis/GROUP/VERSION), the resources of
``emulator.kuberesources`` (list, watch, get, create, replace, patch, delete; the scale and status
subresources) and writes kubeconfig files the official ``kubernetes`` client loads. Connections are kept
alive and have TCP_NODELAY set, so a call costs about a millisecond rather than Nagle's 40 ms.

Request record (opt-in, for checking RBAC against the calls the code makes): ``KubeApiServer(store,
record_requests=True)`` keeps one ``KubeRequest`` per resource request it is sent, in arrival order, and
``requests()`` returns a copy of them (``clear_requests()`` empties the record). Each is what the real API
server's authorizer would be asked, as ``request_info()`` derives it from the HTTP method, path and query the
way kube-apiserver's RequestInfoFactory does: the verb in RBAC terms (GET on a named object is get, on a
collection list, or watch with ``?watch=true``; POST create, PUT update, PATCH patch, DELETE delete, or
deletecollection on a collection; the deprecated /watch/ path prefix is watch), the API group ("" for core),
version, resource plural, subresource ("scale", "status"; ``rbac_resource`` spells "deployments/scale"),
namespace and name ("" when absent). A request is recorded once authenticated (as authorization would see it)
and before it is served, so a request the emulator answers 404 or 4xx is recorded too; discovery, /version
and the health paths are non-resource requests and are not. Recording costs one lock and an append per
request; without ``record_requests`` nothing is kept and ``requests()`` raises, so a test cannot pass on an
empty record by mistake.

Fault injection (tests only): ``KubeApiServer(store, faults=Faults([...]))`` (emulator.kubefaults) answers
chosen resource requests with an error status (500, 409, ...) or slowly, before serving them.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from emulator.kubefaults import Faults, status_body
from emulator.kuberoutes import answer, discovery, route
from emulator.kubestore import BadRequestError, KubeStore, StoreError
from emulator.kubetable import as_table, wants_table
from emulator.kubewatch import stream_watch

__all__ = ["KubeApiServer", "KubeRequest", "request_info", "write_kubeconfig"]
_HEALTH = ("/healthz", "/readyz", "/livez")
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
"""Subresources of a Namespace object: /api/v1/namespaces/NAME/status is not a resource "status" in NAME."""


@dataclass(frozen=True, slots=True)
class KubeRequest:
    """One resource request as the authorizer sees it: RBAC verb, API group ("" = core), version, resource
    plural, subresource, namespace and object name ("" when absent)."""

    verb: str
    group: str
    version: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def rbac_resource(self) -> str:
        """The resource as RBAC rules name it: "deployments", or "deployments/scale" for a subresource."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_info(method: str, path: str, query: Mapping[str, str] | None = None) -> KubeRequest | None:
    """The KubeRequest of an HTTP request (``path`` without its query string), or None for a non-resource
    request (discovery, /version, health). Follows kube-apiserver's RequestInfoFactory; see the module
    docstring."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    verb = _VERBS.get(method.upper(), method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return None
    resource, name, subresource = (*rest[:3], "", "")[:3]
    if not name and verb == "get":
        verb = "watch" if (query or {}).get("watch") in ("true", "1") else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    return KubeRequest(verb, group, version, resource, subresource, namespace, name)


class _RequestLog:
    """The record of KubeRequests, appended to by the connection threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[KubeRequest] = []

    def add(self, entry: KubeRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[KubeRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every connection thread

    def __init__(self, address: tuple[str, int], store: KubeStore, token: str | None,
                 log: _RequestLog | None = None, faults: Faults | None = None) -> None:
        super().__init__(address, _Handler)
        self.store, self.token, self.log, self.faults = store, token, log, faults
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
        if self.server.log is not None and self._authorized():
            info = request_info(method, url.path, query)
            if info is not None:
                self.server.log.add(info)
        try:
            body = self._body()
            if not self._authorized():
                raise StoreError({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            if self.server.faults is not None and self._injected(method, url.path, query):
                return
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
            if method == "GET" and where.subresource is None and wants_table(self.headers.get("Accept", "")):
                result = as_table(where.resource, result, query.get("includeObject", "Metadata"))
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

    def _injected(self, method: str, path: str, query: dict[str, str]) -> bool:
        """Apply the fault rule this request matches, if any: sleep its delay; answer its status (True)."""
        info = request_info(method, path, query)
        if info is None or self.server.faults is None:
            return False
        fault = self.server.faults.pick(info.verb, info.rbac_resource, info.namespace, info.name)
        if fault is None:
            return False
        if fault.delay_s and self.server.stopping.wait(fault.delay_s):
            return False
        if not fault.status:
            return False
        self._json(fault.status, status_body(fault.status, info.verb, info.rbac_resource, info.name))
        return True

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
    """An HTTP server on ``host`` (127.0.0.1) serving ``store`` as a Kubernetes API; port 0 picks a free one.

    With ``record_requests`` it keeps the resource requests it is sent (see the module docstring).
    """

    def __init__(self, store: KubeStore, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 record_requests: bool = False, faults: Faults | None = None) -> None:
        self._store, self._address, self._token = store, (host, port), token
        self._log = _RequestLog() if record_requests else None
        self.faults = faults
        """The fault rules (emulator.kubefaults), or None: every request is served."""
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:41234 (after start())."""
        if self._httpd is None:
            raise RuntimeError("the Kubernetes API emulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self) -> list[KubeRequest]:
        """The resource requests recorded so far, oldest first (a copy; safe while serving).

        Raises RuntimeError when the server was not made with ``record_requests=True``.
        """
        if self._log is None:
            raise RuntimeError("the Kubernetes API emulator records requests only with record_requests=True")
        return self._log.entries()

    def clear_requests(self) -> None:
        """Forget the requests recorded so far (a no-op when not recording)."""
        if self._log is not None:
            self._log.clear()

    def start(self) -> None:
        """Bind and serve in a background thread."""
        if self._httpd is not None:
            return
        self._httpd = _Server(self._address, self._store, self._token, self._log, self.faults)
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
