"""Malformed Optimize requests against a real OptimizerService on 127.0.0.1.

Each case takes the small sample set as an OptimizeRequest and sets one to four scalar fields anywhere in it to
hostile values of the field's type (Infinity, NaN, 1e308, int32 extremes, 100k-character or empty strings),
or repeats a list entry. INVALID_ARGUMENT and FAILED_PRECONDITION are the expected answers to bad input;
INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED (a detail too long for the headers) or a deadline are findings; an OK
answer with a cost that is not finite or replicas outside the bounds is absurd.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import AbstractContextManager
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from fuzz import values
from fuzz.datafiles import SAMPLE
from fuzz.figures import Figures
from fuzz.serving import served
from proto import optimizer_pb2, optimizer_pb2_grpc
from services.core import bounds
from services.core.datafiles import load_system_dir
from services.optimizer.servicer import SERVICE_NAME, OptimizerServicer, register
from services.runtime import convert

FINDINGS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE}
_FLOATS = (FD.TYPE_DOUBLE, FD.TYPE_FLOAT)
_INTS = (FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_UINT32, FD.TYPE_UINT64)


def scalar_slots(msg: Message, path: str = "") -> list[tuple[Message, Any, str]]:
    """Every scalar field (set or not) of ``msg`` and its sub-messages: (message, field descriptor, path)."""
    out = []
    for field in msg.DESCRIPTOR.fields:
        where = f"{path}.{field.name}" if path else field.name
        if field.type == FD.TYPE_MESSAGE:
            if field.is_repeated:
                for i, item in enumerate(getattr(msg, field.name)):
                    if not hasattr(item, "DESCRIPTOR"):
                        continue
                    out += scalar_slots(item, f"{where}[{i}]")
            elif msg.HasField(field.name):
                out += scalar_slots(getattr(msg, field.name), where)
        elif not field.is_repeated:
            out.append((msg, field, where))
    return out


def _hostile(field: Any, rng: random.Random) -> Any:
    if field.type in _FLOATS:
        return rng.choice((math.inf, -math.inf, math.nan, 1e308, -1e308, -1.0, 0.5, 1e-320, 2.0**31, 1e6 + 1))
    if field.type in _INTS:
        low, high = (0, 2**32 - 1) if field.type in (FD.TYPE_UINT32,) else (
            (0, 2**64 - 1) if field.type == FD.TYPE_UINT64 else
            (-(2**31), 2**31 - 1) if field.type in (FD.TYPE_INT32, FD.TYPE_SINT32) else (-(2**63), 2**63 - 1))
        return rng.choice((low, high, -1, 0, 1, 4097, 10_001, 1_000_000_000, high // 2))
    if field.type == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FD.TYPE_STRING:
        return rng.choice([s for s in values.STRINGS if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)])
    return None


def mutate(request: Message, rng: random.Random) -> list[str]:
    """Change one to four fields of ``request`` in place; returns what was done."""
    done = []
    for _ in range(rng.randint(1, 4)):
        slots = scalar_slots(request)
        msg, field, where = rng.choice(slots)
        value = _hostile(field, rng)
        if value is None:
            continue
        try:
            setattr(msg, field.name, value)
        except (ValueError, TypeError):
            continue
        done.append(f"{where}={bounds.short(value, 30)}")
    if rng.random() < 0.1 and request.system.servers:
        request.system.servers.append(request.system.servers[rng.randrange(len(request.system.servers))])
        done.append("a server repeated")
    return done


def optimizer_stub() -> AbstractContextManager[optimizer_pb2_grpc.OptimizerServiceStub]:
    """A real OptimizerService on 127.0.0.1 and a stub to it."""
    return served(register(OptimizerServicer()), SERVICE_NAME, optimizer_pb2_grpc.OptimizerServiceStub)


def check_reply(reply: optimizer_pb2.OptimizeResponse) -> str:
    """Why an OK answer is absurd ("" when it is not)."""
    for row in reply.allocations:
        a = row.allocation
        if not 0 <= a.num_replicas <= bounds.MAX_REPLICAS or not 0 <= a.max_batch <= bounds.MAX_BATCH_SIZE:
            return f"{row.server_name}: {a.num_replicas} replicas, batch {a.max_batch}"
        if not math.isfinite(a.cost_per_hour) or not math.isfinite(a.itl_ms) or not math.isfinite(a.ttft_ms):
            return f"{row.server_name}: cost {a.cost_per_hour}, ITL {a.itl_ms}, TTFT {a.ttft_ms}"
    if not math.isfinite(reply.stats.total_cost_per_hour):
        return f"total cost {reply.stats.total_cost_per_hour}"
    return ""


def run(seed: int, cases: int, budget_s: float = math.inf) -> Figures:
    """``cases`` malformed requests from ``seed`` (stopping early after ``budget_s`` seconds)."""
    rng = random.Random(seed)
    base = optimizer_pb2.OptimizeRequest(system=convert.system_to_proto(load_system_dir(str(SAMPLE)).system))
    figures = Figures("optimizer gRPC")
    started = time.monotonic()
    with optimizer_stub() as stub:
        for case in range(cases):
            if time.monotonic() - started > budget_s:
                break
            request = optimizer_pb2.OptimizeRequest()
            request.CopyFrom(base)
            changes = mutate(request, rng)
            figures.inputs += 1
            what = f"seed {seed} case {case}: {'; '.join(changes)}"
            try:
                reply = stub.Optimize(request, timeout=30)
            except grpc.RpcError as err:
                if err.code() in FINDINGS:
                    figures.found_rpc_error(what, err)
                continue
            absurd = check_reply(reply)
            if absurd:
                figures.found("absurd", f"{what}: {absurd}")
    figures.elapsed_s = time.monotonic() - started
    return figures
