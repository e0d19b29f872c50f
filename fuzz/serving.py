"""A real gRPC service on 127.0.0.1 for a campaign, and a stub to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from services.runtime.grpcserve import build_server


@contextmanager
def served(register: Callable[[grpc.Server], None], service_name: str, stub_class: Callable[[grpc.Channel], Any]
           ) -> Iterator[Any]:
    """Serve ``register`` (a servicer's register callable) as ``service_name`` on a free 127.0.0.1 port and
    yield ``stub_class`` over a channel to it; the server stops on exit."""
    server, port, _ = build_server(register, [service_name], "127.0.0.1:0")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield stub_class(channel)
    finally:
        server.stop(None)
