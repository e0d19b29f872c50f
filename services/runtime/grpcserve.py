"""gRPC server plumbing shared by the services: standard health checking, reflection, domain-error mapping
and a SIGTERM/SIGINT drain.

Every business call passes one interceptor (CallInterceptor): domain errors map to status codes in exactly one
place (``status_for``), each call is timed and logged once (``rpc_completed``) with the controller's cycle id
from the call's metadata; servicers only raise. Clients branch on ``err.code()``, never on message text.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.core.errors import (
    DataFileError,
    InfeasibleError,
    InvalidInputError,
    UnavailableError,
)
from services.core.redact import redact
from services.runtime.logs import get_logger

_log = get_logger("grpcserve")

_STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (DataFileError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (InfeasibleError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(err: Exception) -> grpc.StatusCode:
    """The gRPC status code for a domain error (INTERNAL for anything else)."""
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(err, error_type):
            return code
    return grpc.StatusCode.INTERNAL


MAX_DETAIL_CHARS = 1_000
"""Longest status detail sent: a value echoed whole could exceed the peer's header limit (8 KiB by default),
and the client would see RESOURCE_EXHAUSTED instead of the error."""


def error_detail(err: Exception) -> str:
    """The status detail of ``err``: its message (or type name) with credentials redacted, as valid UTF-8 (a
    lone surrogate escaped), cut to MAX_DETAIL_CHARS characters."""
    text = redact(str(err) or type(err).__name__).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return f"{text[:MAX_DETAIL_CHARS - 40]}... ({len(text)} characters, cut)"


CYCLE_ID_METADATA = "x-inferno-cycle-id"
"""gRPC metadata key carrying the controller's cycle id; the interceptor puts it in every log line of the call."""


def _aborted_code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    code = context.code() if callable(getattr(context, "code", None)) else None
    return code if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK else None


class CallInterceptor(grpc.ServerInterceptor):
    """The one place every business call passes (unary methods; health and reflection are left alone): binds the
    caller's cycle id (metadata ``x-inferno-cycle-id``) and the method into the log context of the call, maps a
    domain error to its status code (status_for; an unexpected error is INTERNAL and logged with its
    traceback), times the call and logs one ``rpc_completed`` line with the method, status code, duration and
    cycle id. ``now`` is a monotonic clock in seconds."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or details.method.startswith("/grpc."):
            return handler
        metadata = dict(details.invocation_metadata or ())
        context_vars = {"rpc": details.method.rsplit("/", 1)[-1]}
        cycle_id = str(metadata.get(CYCLE_ID_METADATA, ""))
        if cycle_id:
            context_vars["cycle_id"] = int(cycle_id) if cycle_id.isdigit() else cycle_id
        inner = handler.unary_unary

        def behavior(request: Any, context: grpc.ServicerContext) -> Any:
            with structlog.contextvars.bound_contextvars(**context_vars):
                return self._call(inner, request, context, context_vars)

        return grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _call(self, inner: Callable[[Any, Any], Any], request: Any, context: grpc.ServicerContext,
              call: dict[str, Any]) -> Any:
        started, code = self._now(), grpc.StatusCode.OK
        try:
            return inner(request, context)
        except Exception as err:  # noqa: BLE001 - every error becomes a status, none escapes as a crash
            aborted = _aborted_code(context)
            if aborted is not None:  # the servicer chose its status itself
                code = aborted
                raise
            code, detail = status_for(err), error_detail(err)
            if code is grpc.StatusCode.INTERNAL:
                _log.error("rpc_failed", **call, code=code.name, error=detail, exc_info=True)
            else:
                _log.warning("rpc_failed", **call, code=code.name, error=detail)
            context.abort(code, detail)
        finally:
            _log.info("rpc_completed", **call, code=code.name,
                      duration_ms=round((self._now() - started) * 1000.0, 1))


def build_server(
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    address: str,
    *,
    max_workers: int = 8,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create and start a server bound to ``address`` ("host:port", port 0 = any free port).

    ``register`` adds the servicers; ``service_names`` are their full names (e.g.
    ``optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name``), marked SERVING in the
    standard health service together with the overall "" service. Returns (server, bound port, health).
    Raises RuntimeError when the address cannot be bound.
    """
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), interceptors=[CallInterceptor()])
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC server to {address}")
    server.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def build_health_server(health_servicer: health.HealthServicer, address: str) -> tuple[grpc.Server, int]:
    """A second server on ``address`` answering only the standard health service (no reflection, no business
    method), sharing ``health_servicer``'s statuses: the kubelet probes it on the pod IP while the service
    itself listens on loopback only. Returns (server, bound port); raises RuntimeError when it cannot bind."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC health server to {address}")
    server.start()
    return server, port


def drain(server: grpc.Server, health_servicer: health.HealthServicer, grace_s: float) -> None:
    """Mark every service NOT_SERVING, then stop accepting and let in-flight calls finish within grace_s."""
    health_servicer.enter_graceful_shutdown()
    server.stop(grace_s).wait()


def serve(
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    address: str,
    *,
    grace_s: float = 5.0,
    component: str = "grpc",
    health_address: str = "",
) -> None:
    """Run a server on ``address`` until SIGTERM or SIGINT, then drain it (blocking; main thread only).

    ``health_address`` ("host:port", "" = none): also answer the standard health service alone there
    (build_health_server), for probes from outside the pod.
    """
    server, port, health_servicer = build_server(register, service_names, address)
    health_only = build_health_server(health_servicer, health_address)[0] if health_address else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _log.info("server_started", component=component, address=address, port=port, health_address=health_address)
    stop.wait()
    _log.info("server_draining", component=component, grace_s=grace_s)
    drain(server, health_servicer, grace_s)
    if health_only is not None:
        health_only.stop(None)
    _log.info("server_stopped", component=component)
