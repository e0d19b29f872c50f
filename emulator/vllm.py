"""One emulated vLLM replica: an OpenAI-compatible HTTP server on 127.0.0.1 over the emulated engine.

Routes: ``POST /v1/completions`` and ``/v1/chat/completions`` (``stream`` true: SSE ``data: {...}`` chunks
ending with ``data: [DONE]``, over chunked transfer encoding; false: one JSON body with ``usage``),
``GET /v1/models``, ``/health`` and ``/metrics`` (vLLM's names, see emulator/vllmmetrics.py).
Output length is ``max_tokens``, or for chat ``max_completion_tokens`` (which wins, as in vLLM; default 16;
the engine always generates exactly that many tokens, as vLLM with ``ignore_eos``). Prompt length is the
extension field ``prompt_tokens`` when given, else the number of whitespace-separated words ("tokens") of
``prompt`` (a string, a list of strings, or a list of token ids) or of the chat messages' contents (a string,
or a list of parts whose ``text`` parts count; an image, video or audio part gets 400: the emulated models are
text-only). ``usage.prompt_tokens`` is that count, the prompt the engine processed. Streams send ``usage`` in
a last chunk with ``stream_options.include_usage``, and in every chunk (tokens so far) with
``continuous_usage_stats`` too, as vLLM does; GuideLLM asks for both. ``priority`` (an integer, lower first)
orders the waiting queue when the replica runs with ``--scheduling-policy priority``; a non-zero one on an
FCFS replica gets vLLM's 400. ``stop`` and ``ignore_eos`` are
accepted and change nothing. A request naming another model gets 404, one too long for the KV cache 400, and
one arriving while the replica drains 503. Sockets use TCP_NODELAY so that every token leaves at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.vllmengine import Engine, EngineParams, Request
from emulator.vllmmetrics import CONTENT_TYPE, VllmMetrics

DEFAULT_MAX_TOKENS = 16
_TOKEN_TIMEOUT_S = 600.0
"""Longest a handler waits for the next token before giving up on the engine."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], replica: VllmServer) -> None:
        super().__init__(address, _Handler)
        self.replica = replica

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients (Prometheus, the load generator) drop keep-alive connections at will."""
        return


class VllmServer:
    """An emulated vLLM replica: engine thread plus HTTP server on ``host:port`` (0 picks a free port)."""

    def __init__(self, params: EngineParams, model_name: str = "emulated", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.model_name = model_name
        self.metrics = VllmMetrics(model_name)
        self.engine = Engine(params, self.metrics)
        self.draining = False
        self._httpd = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the replica listens on."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VllmServer:
        """Start the engine and serve HTTP on a background thread."""
        self.engine.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"vllm-http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def drain(self, grace_s: float) -> bool:
        """Refuse new requests and wait up to ``grace_s`` for the in-flight ones; True when all finished."""
        self.draining = True
        return self.engine.wait_idle(grace_s)

    def stop(self, grace_s: float = 0.0) -> None:
        """Drain for at most ``grace_s``, abort what is left, close the listening socket."""
        self.drain(grace_s)
        self.engine.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        replica = self.server.replica
        if self.path == "/metrics":
            self._reply(200, replica.metrics.render(), CONTENT_TYPE)
        elif self.path == "/health":
            self._reply(200, b"", "text/plain")
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{
                "id": replica.model_name, "object": "model", "created": int(time.time()),
                "owned_by": "inferno-emulator", "root": replica.model_name,
                "max_model_len": replica.engine.params.context_limit}]})
        else:
            self._error(404, f"no route {self.path}", "NotFoundError")

    def do_POST(self) -> None:  # noqa: N802
        kind = {"/v1/completions": "text", "/v1/chat/completions": "chat"}.get(self.path.split("?")[0])
        body = self._body()
        if kind is None:
            self._error(404, f"no route {self.path}", "NotFoundError")
        elif body is None:
            self._error(400, "the body must be a JSON object", "BadRequestError")
        else:
            self._complete(kind, body)

    def _complete(self, kind: str, body: dict) -> None:
        replica = self.server.replica
        model = body.get("model") or replica.model_name
        if model != replica.model_name:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        if replica.draining:
            self._error(503, "the replica is shutting down", "ServiceUnavailableError")
            return
        try:
            request = replica.engine.submit(prompt_length(body, kind), output_length(body, kind),
                                            request_priority(body, replica.engine.core.params.scheduling_policy))
        except (TypeError, ValueError, RuntimeError) as err:
            self._error(400, str(err), "BadRequestError")
            return
        if body.get("stream"):
            options = body.get("stream_options") or {}
            continuous = bool(options.get("include_usage") and options.get("continuous_usage_stats"))
            self._stream(request, _Shape(kind, model, request, continuous), bool(options.get("include_usage")))
        else:
            self._whole(request, _Shape(kind, model, request))

    def _stream(self, request: Request, shape: _Shape, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index in _tokens(request):
                self._chunk(shape.chunk(index))
            if request.aborted:
                self._chunk({"error": {"message": "the replica stopped", "type": "ServiceUnavailableError"}})
            elif include_usage:
                self._chunk(shape.usage_chunk())
            self._frame(b"data: [DONE]\n\n", last=True)
        except OSError:
            self.server.replica.engine.cancel(request)
            self.close_connection = True

    def _chunk(self, document: dict) -> None:
        self._frame(b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n")

    def _frame(self, data: bytes, last: bool = False) -> None:
        """One chunk of the chunked body in a single send (and the terminating chunk when ``last``)."""
        self.wfile.write(b"%x\r\n%s\r\n%s" % (len(data), data, b"0\r\n\r\n" if last else b""))

    def _whole(self, request: Request, shape: _Shape) -> None:
        count = sum(1 for _ in _tokens(request))
        if request.aborted:
            self._error(503, "the replica stopped", "ServiceUnavailableError")
            return
        self._json(200, shape.whole(count))

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _error(self, code: int, message: str, kind: str) -> None:
        self._json(code, {"object": "error", "message": message, "type": kind, "code": code})

    def _json(self, code: int, document: Any) -> None:
        self._reply(code, json.dumps(document).encode(), "application/json")

    def _reply(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _tokens(request: Request):
    """Yield the index of each token as the engine emits it; stops at the end or when the engine aborts."""
    for index in range(request.max_tokens + 1):
        if request.events.get(timeout=_TOKEN_TIMEOUT_S) is None:
            return
        yield index


def request_priority(body: dict, policy: str) -> int:
    """The request's ``priority`` (vLLM's field: an integer, lower is served first, default 0). ValueError when
    it is not an integer, or is not 0 while the replica's ``--scheduling-policy`` is not "priority" (vLLM
    refuses it then)."""
    value = body.get("priority", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be an integer, got {value!r}")
    if value != 0 and policy != "priority":
        raise ValueError(f"Got priority {value} but Priority scheduling is not enabled.")
    return value


def output_length(body: dict, kind: str) -> int:
    """Tokens to generate: ``max_completion_tokens`` (chat; wins over ``max_tokens`` as in vLLM), else
    ``max_tokens``, else DEFAULT_MAX_TOKENS. ValueError when the value is not a positive integer."""
    names = ("max_completion_tokens", "max_tokens") if kind == "chat" else ("max_tokens",)
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return value
    return DEFAULT_MAX_TOKENS


def _content_words(content: object) -> int:
    """Words of one chat message's content: a string, or a list of parts of which only text may appear."""
    if content is None or isinstance(content, str):
        return len((content or "").split())
    if not isinstance(content, list):
        raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    words = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise ValueError(f"content part of type {kind!r} is not supported: the emulated model is text-only")
        words += len(str(part.get("text") or "").split())
    return words


def prompt_length(body: dict, kind: str) -> int:
    """Prompt tokens of a request body: ``prompt_tokens`` if present, else whitespace words of the text (the
    chat messages' text contents, strings or text parts). ValueError on a non-text content part."""
    if body.get("prompt_tokens") is not None:
        return int(body["prompt_tokens"])
    if kind == "chat":
        return sum(_content_words(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict))
    prompt = body.get("prompt") or ""
    if isinstance(prompt, str):
        return len(prompt.split())
    if all(isinstance(p, int) for p in prompt):
        return len(prompt)
    return sum(len(str(p).split()) for p in prompt)


class _Shape:
    """The OpenAI response documents for one request (completion or chat)."""

    def __init__(self, kind: str, model: str, request: Request, continuous_usage: bool = False) -> None:
        self.kind, self.model, self.request = kind, model, request
        self.continuous_usage = continuous_usage
        self.created = int(time.time())
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{request.request_id.removeprefix('cmpl-')}"

    def _envelope(self, suffix: str, choices: list[dict]) -> dict:
        obj = ("chat.completion" if self.kind == "chat" else "text_completion") + suffix
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices}

    def chunk(self, index: int) -> dict:
        """The streamed chunk carrying token ``index`` (0-based)."""
        last = index + 1 >= self.request.max_tokens
        reason = "length" if last else None
        if self.kind == "chat":
            delta = {"role": "assistant", "content": f" t{index}"} if index == 0 else {"content": f" t{index}"}
            document = self._envelope(".chunk", [{"index": 0, "delta": delta, "finish_reason": reason}])
        else:
            document = self._envelope("", [{"index": 0, "text": f" t{index}", "logprobs": None,
                                            "finish_reason": reason}])
        if self.continuous_usage:
            document["usage"] = self.usage(index + 1)
        return document

    def usage(self, count: int | None = None) -> dict:
        """The usage block."""
        completion = self.request.generated if count is None else count
        return {"prompt_tokens": self.request.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.request.prompt_tokens + completion}

    def usage_chunk(self) -> dict:
        """The last streamed chunk when ``stream_options.include_usage`` is set."""
        return {**self._envelope(".chunk" if self.kind == "chat" else "", []), "usage": self.usage()}

    def whole(self, count: int) -> dict:
        """The non-streaming response with ``count`` tokens."""
        text = "".join(f" t{i}" for i in range(count))
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {**self._envelope("", [choice]), "usage": self.usage(count)}
