"""The only mapping between protos (package inferno.v1) and the data model (services.core.model).

Proto field names follow the dataclass field names, so one generic mapper (``to_proto``, ``from_proto``) maps
by name, recursing into nested messages, repeated fields (tuples), maps (Mappings), optional fields (None =
not set) and enums (a StrEnum is its string value on the wire, "" its default; a proto enum maps by member
name, its 0 value meaning "not set" is refused). What is not one to one is stated once, in the tables below:
the numbers that may be negative, the wire zeros that mean the dataclass default, the checks of a message and
the fields with a mapping of their own.

Every ``from_proto`` validates what the wire cannot: enum strings and negative figures raise InvalidInputError
naming the field by its path (``system.servers[a].current.load.arrival_rate_rpm``; names and values shortened,
services.core.bounds.short, so an error detail stays far below gRPC's header limit), so servicers answer
INVALID_ARGUMENT. Physical bounds of every figure are checked on the model by services.core.bounds.check_system
(docs/model.md s1).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from proto import actuator_pb2, collector_pb2, optimizer_pb2, types_pb2
from services.core import model as m
from services.core.bounds import short, short_name
from services.core.errors import InvalidInputError
from services.core.validate import validate_system

_T = TypeVar("_T")

_UNCHECKED: Mapping[type, frozenset[str] | None] = {
    m.Allocation: frozenset({"itl_ms", "ttft_ms", "unserved_rate_rpm", "class_latency_s"}),
    m.Accelerator: frozenset({"mem_size_gb", "mem_bw_gbps"}),
    m.PowerProfile: None,
    m.ModelPerf: frozenset({"acc_count"}),
    m.ServiceClass: frozenset({"priority"}),
    m.ObservedMetrics: None,
    m.Prediction: None,
    m.ActuationResult: frozenset({"replicas_from", "replicas_to"}),
}
"""Numbers a message may carry below zero (None: all of the message's), because they are measured (a growth
is signed), predicted, or bounded on the model later (services.core.bounds). Every other number must be >= 0."""

_ZERO_IS_DEFAULT: frozenset[tuple[type, str]] = frozenset({
    (m.Server, "service_class"), (m.Accelerator, "multiplicity"), (m.OptimizerSettings, "token_budget")})
"""Fields where the wire's zero (0, "") means the dataclass default (Free, 1, 8192)."""

_KEYS: Mapping[type, Callable[[Any], str]] = {
    m.Server: lambda msg: short_name(msg.name),
    m.Accelerator: lambda msg: short_name(msg.name),
    m.ServiceClass: lambda msg: short_name(msg.name),
    m.ModelTarget: lambda msg: short_name(msg.model),
    m.ModelPerf: lambda msg: f"{short_name(msg.model)}/{short_name(msg.accelerator)}",
    m.ActuationResult: lambda msg: short_name(msg.server_name),
}
"""How an element names itself in an error path (``servers[a]``); elements of other messages are numbered."""


def _check_server(msg: types_pb2.Server, where: str) -> None:
    if not msg.name:
        raise InvalidInputError(f"{where}.name must not be empty")


def _check_managed(msg: types_pb2.ManagedServer, where: str) -> None:
    if not msg.ref.namespace or not msg.ref.name:
        raise InvalidInputError(f"{where}.ref needs a namespace and a name, got "
                                f"{short(msg.ref.namespace)}/{short(msg.ref.name)}")


def _check_notice(msg: actuator_pb2.ServerNotice, where: str) -> None:
    if msg.type not in ("Normal", "Warning") or not msg.reason.isalnum():
        raise InvalidInputError(f"{where}: type must be Normal or Warning and reason CamelCase, got "
                                f"{short(msg.type)} {short(msg.reason)}")


_CHECKS: Mapping[type, Callable[[Any, str], None]] = {
    m.Server: _check_server, m.ManagedServer: _check_managed, m.Notice: _check_notice}
"""Checks of a whole message before it is mapped (``where`` is its path)."""


def _accelerator_type(msg: types_pb2.Accelerator, where: str) -> str:
    return msg.type or msg.name


def _deviations_from(msg: types_pb2.Robustness, where: str) -> tuple[tuple[str, str, m.Deviation], ...]:
    pairs: list[tuple[str, str, m.Deviation]] = []
    for i, row in enumerate(msg.deviations):
        if any(model == row.model and acc == row.accelerator for model, acc, _ in pairs):
            raise InvalidInputError(f"{where}[{i}]: duplicate model/accelerator "
                                    f"{short_name(row.model)}/{short_name(row.accelerator)}")
        pairs.append((row.model, row.accelerator, from_proto(row.deviation, m.Deviation, f"{where}[{i}].deviation")))
    return tuple(pairs)


def _deviations_to(deviations: tuple[tuple[str, str, m.Deviation], ...], msg: types_pb2.Robustness) -> None:
    for model, acc, deviation in deviations:
        to_proto(deviation, msg.deviations.add(model=model, accelerator=acc).deviation)


def _managed_from(msg: collector_pb2.CollectResponse, where: str) -> tuple[m.ManagedServer, ...]:
    return managed_servers_from_proto(msg.managed, where)


_FROM: Mapping[tuple[type, str], Callable[[Any, str], Any]] = {
    (m.Accelerator, "type"): _accelerator_type,
    (m.Robustness, "deviations"): _deviations_from,
    (m.Collection, "managed"): _managed_from,
}
"""Fields mapped from the wire by a function of their own (message, path): not one to one."""

_TO: Mapping[tuple[type, str], Callable[[Any, Any], None]] = {(m.Robustness, "deviations"): _deviations_to}
"""Fields mapped to the wire by a function of their own (value, message to fill)."""


_SCALAR, _STR_ENUM, _PROTO_ENUM, _MESSAGE, _MESSAGES, _SCALARS, _MAP = range(7)
"""How a field maps: a scalar, a StrEnum as its string, a proto enum by member name, a message, repeated
messages, repeated scalars, a map."""
_NUMBERS = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
            FieldDescriptor.CPPTYPE_UINT64, FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT}


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    """One dataclass field, its proto field and how they map, worked out once per (dataclass, message)."""

    name: str
    mode: int
    kind: Any            # the dataclass or enum of the field, or of its elements; None for scalars
    presence: bool       # the proto field tells "not set" (a message, an optional scalar)
    has_default: bool
    default: Any
    checked: bool        # a number (or numbers) that must be >= 0
    zero_is_default: bool
    keyed: bool          # its elements name themselves in error paths (_KEYS)
    enum_values: Mapping[Any, Any]  # proto enum: value number -> member name (from) and name -> number (to)
    own_from: Callable[[Any, str], Any] | None
    own_to: Callable[[Any, Any], None] | None


@functools.cache
def _plan(cls: type, descriptor: Any) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    unchecked = _UNCHECKED.get(cls, frozenset())
    plan = []
    for f in dataclasses.fields(cls):
        fd = descriptor.fields_by_name[f.name]
        kind = _inner(hints[f.name])
        kind = kind if dataclasses.is_dataclass(kind) or _is_enum(kind) else None
        number_fd = fd
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            mode, number_fd = _MAP, fd.message_type.fields_by_name["value"]
        elif fd.is_repeated:
            mode = _MESSAGES if fd.message_type is not None else _SCALARS
        elif fd.message_type is not None:
            mode = _MESSAGE
        elif fd.enum_type is not None:
            mode = _PROTO_ENUM
        else:
            mode = _STR_ENUM if kind is not None else _SCALAR
        own = (cls, f.name) in _FROM or (cls, f.name) in _TO
        if mode in (_MESSAGE, _MESSAGES) and kind is None and not own:
            raise TypeError(f"{cls.__name__}.{f.name}: no dataclass for message {fd.message_type.full_name}")
        enum_values: dict[Any, Any] = {}
        if fd.enum_type is not None:
            enum_values = {**{v.number: v.name for v in fd.enum_type.values}, **{v.name: v.number
                                                                                 for v in fd.enum_type.values}}
        plan.append(_Field(
            f.name, mode, kind, fd.has_presence,
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
            f.default if f.default is not dataclasses.MISSING else None,
            number_fd.cpp_type in _NUMBERS and unchecked is not None and f.name not in unchecked,
            (cls, f.name) in _ZERO_IS_DEFAULT, kind in _KEYS, enum_values,
            _FROM.get((cls, f.name)), _TO.get((cls, f.name))))
    return tuple(plan)


def _inner(hint: Any) -> Any:
    """X of ``X | None`` and of ``tuple[X, ...]``; the hint itself otherwise."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return _inner(next(arg for arg in typing.get_args(hint) if arg is not type(None)))
    if origin is tuple:
        return typing.get_args(hint)[0]
    return hint


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _non_negative(value: float, where: str) -> float:
    if value < 0 or value != value:
        raise InvalidInputError(f"{where} must be a non-negative number, got {short(value)}")
    return value


def to_proto(obj: Any, msg: Message) -> Message:
    """Fill ``msg`` from the dataclass ``obj`` field by field (same names; None leaves a field unset) and return
    it. Raises TypeError or ValueError when a value does not fit its proto field (a programming error)."""
    for f in _plan(type(obj), msg.DESCRIPTOR):
        value = getattr(obj, f.name)
        if f.own_to is not None:
            f.own_to(value, msg)
        elif value is None:
            continue
        elif f.mode == _SCALAR:
            setattr(msg, f.name, value.value if isinstance(value, enum.Enum) else value)
        elif f.mode == _STR_ENUM:
            setattr(msg, f.name, value.value)
        elif f.mode == _MESSAGE:
            sub = getattr(msg, f.name)
            sub.SetInParent()
            to_proto(value, sub)
        elif f.mode == _MESSAGES:
            add = getattr(msg, f.name).add
            for item in value:
                to_proto(item, add())
        elif f.mode == _SCALARS:
            getattr(msg, f.name).extend(value)
        elif f.mode == _MAP:
            getattr(msg, f.name).update(dict(sorted(value.items())))
        else:
            setattr(msg, f.name, f.enum_values[value.name])
    return msg


def from_proto(msg: Message, cls: type[_T], path: str) -> _T:
    """The dataclass ``cls`` from ``msg`` field by field (same names; an unset optional field gives the
    dataclass default). ``path`` names the message in errors. Raises InvalidInputError naming the field for a
    negative or NaN figure (except those in _UNCHECKED), an unknown enum string, a proto enum left unspecified
    and what the checks in _CHECKS refuse."""
    if cls in _CHECKS:
        _CHECKS[cls](msg, path)
    if cls in _KEYS:
        path = f"{path}[{_KEYS[cls](msg)}]"
    values: dict[str, Any] = {}
    for f in _plan(cls, msg.DESCRIPTOR):
        if f.own_from is not None:
            values[f.name] = f.own_from(msg, _join(path, f.name))
            continue
        if f.presence and f.has_default and not msg.HasField(f.name):
            continue
        wire = getattr(msg, f.name)
        if f.mode == _SCALAR:
            value: Any = wire
            if f.checked and (wire < 0 or wire != wire):
                _non_negative(wire, _join(path, f.name))
        elif f.mode == _MESSAGE:
            value = from_proto(wire, f.kind, _join(path, f.name))
        elif f.mode == _MESSAGES:
            where = _join(path, f.name)
            value = tuple(from_proto(item, f.kind, where if f.keyed else f"{where}[{i}]")
                          for i, item in enumerate(wire))
        elif f.mode == _SCALARS:
            value = tuple(wire)
            if f.checked:
                for i, v in enumerate(value):
                    _non_negative(v, f"{_join(path, f.name)}[{i}]")
        elif f.mode == _MAP:
            value = dict(wire)
            if f.checked:
                for key, v in value.items():
                    _non_negative(v, f"{_join(path, f.name)}[{short_name(key)}]")
        elif f.mode == _STR_ENUM:
            value = _enum(f.kind, wire, f.default, _join(path, f.name))
        else:
            if wire == 0:
                raise InvalidInputError(f"{_join(path, f.name)} must be set")
            value = f.kind[f.enum_values[wire]]
        if f.zero_is_default and not value:
            continue
        values[f.name] = value
    return cls(**values)


def _enum(enum_type: type[enum.Enum], value: str, default: object, where: str) -> object:
    if not value:
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(v.value for v in enum_type)
        raise InvalidInputError(f"{where} must be one of {allowed}, got {short(value)}") from None


def load_to_proto(load: m.Load) -> types_pb2.Load:
    """Load -> proto."""
    return to_proto(load, types_pb2.Load())


def load_from_proto(msg: types_pb2.Load, field: str = "load") -> m.Load:
    """Proto -> Load; negative figures raise InvalidInputError naming ``field``."""
    return from_proto(msg, m.Load, field)


def allocation_to_proto(alloc: m.Allocation) -> types_pb2.Allocation:
    """Allocation -> proto."""
    return to_proto(alloc, types_pb2.Allocation())


def allocation_from_proto(msg: types_pb2.Allocation, field: str = "allocation") -> m.Allocation:
    """Proto -> Allocation; negative replicas, batch or cost raise InvalidInputError naming ``field``."""
    return from_proto(msg, m.Allocation, field)


def observed_from_proto(msg: types_pb2.ObservedMetrics) -> m.ObservedMetrics:
    """Proto -> ObservedMetrics (unset figures become None)."""
    return from_proto(msg, m.ObservedMetrics, "observed")


def server_to_proto(server: m.Server) -> types_pb2.Server:
    """Server -> proto."""
    return to_proto(server, types_pb2.Server())


def server_from_proto(msg: types_pb2.Server, field: str = "server") -> m.Server:
    """Proto -> Server; an empty name or negative count raises InvalidInputError naming ``field``."""
    return from_proto(msg, m.Server, field)


def model_perf_to_proto(perf: m.ModelPerf) -> types_pb2.ModelPerf:
    """ModelPerf -> proto."""
    return to_proto(perf, types_pb2.ModelPerf())


def model_perf_from_proto(msg: types_pb2.ModelPerf, field: str = "model") -> m.ModelPerf:
    """Proto -> ModelPerf; negative figures raise InvalidInputError naming ``field``."""
    return from_proto(msg, m.ModelPerf, field)


def service_class_to_proto(sc: m.ServiceClass) -> types_pb2.ServiceClass:
    """ServiceClass -> proto."""
    return to_proto(sc, types_pb2.ServiceClass())


def service_class_from_proto(msg: types_pb2.ServiceClass, field: str = "service_class") -> m.ServiceClass:
    """Proto -> ServiceClass; negative SLOs raise InvalidInputError naming ``field``."""
    return from_proto(msg, m.ServiceClass, field)


def capacity_from_proto(msg: types_pb2.Capacity, field: str = "capacity") -> m.Capacity:
    """Proto -> Capacity; a negative count raises InvalidInputError naming the type."""
    return from_proto(msg, m.Capacity, field)


def settings_to_proto(s: m.OptimizerSettings) -> types_pb2.OptimizerSettings:
    """OptimizerSettings -> proto."""
    return to_proto(s, types_pb2.OptimizerSettings())


def settings_from_proto(msg: types_pb2.OptimizerSettings, field: str = "optimizer") -> m.OptimizerSettings:
    """Proto -> OptimizerSettings; unknown policy or model names raise InvalidInputError."""
    return from_proto(msg, m.OptimizerSettings, field)


def system_to_proto(system: m.SystemData) -> types_pb2.SystemData:
    """SystemData -> proto."""
    return to_proto(system, types_pb2.SystemData())


def system_from_proto(msg: types_pb2.SystemData, field: str = "system") -> m.SystemData:
    """Proto -> SystemData, checked by the one set of system rules (services.core.validate.validate_system:
    infinity, duplicates, unknown accelerators, bounds); bad values raise InvalidInputError naming the field."""
    system = from_proto(msg, m.SystemData, field)
    validate_system(system)
    return system


def solution_to_proto(solution: m.Solution,
                      stats: optimizer_pb2.OptimizeStats | None = None,
                      robust: optimizer_pb2.RobustReport | None = None) -> optimizer_pb2.OptimizeResponse:
    """Solution (and optional stats and robust report) -> OptimizeResponse; rows sorted by server name."""
    return optimizer_pb2.OptimizeResponse(
        allocations=[optimizer_pb2.ServerAllocation(server_name=name, allocation=allocation_to_proto(a))
                     for name, a in solution.allocations.items()],
        unallocated=[optimizer_pb2.Unallocated(server_name=name, reason=reason)
                     for name, reason in solution.unallocated.items()],
        stats=stats, robustness=robust)


def robust_report_to_proto(gamma: float, cost_per_hour: float, nominal_cost_per_hour: float, allocated: int,
                           nominal_allocated: int,
                           worst: dict[str, tuple[float, float, int, dict[str, float]]]
                           ) -> optimizer_pb2.RobustReport:
    """The robust report's figures -> proto; ``worst`` maps a server to (ITL ms, TTFT ms, nominal replicas,
    worst-case percentiles in ms keyed like ``ttft_ms_p90``, empty without percentile targets)."""
    return optimizer_pb2.RobustReport(
        gamma=gamma, cost_per_hour=cost_per_hour, nominal_cost_per_hour=nominal_cost_per_hour,
        allocated=allocated, nominal_allocated=nominal_allocated,
        worst=[optimizer_pb2.WorstCase(server_name=name, itl_ms=itl, ttft_ms=ttft, nominal_replicas=n,
                                       percentiles=percentiles)
               for name, (itl, ttft, n, percentiles) in sorted(worst.items())])


def allocations_from_proto(rows: Iterable[optimizer_pb2.ServerAllocation]) -> dict[str, m.Allocation]:
    """ServerAllocation rows -> {server name: Allocation}; duplicate names raise InvalidInputError."""
    allocations: dict[str, m.Allocation] = {}
    for row in rows:
        if not row.server_name or row.server_name in allocations:
            raise InvalidInputError(f"allocations: server_name {short(row.server_name)} is empty or repeated")
        allocations[row.server_name] = allocation_from_proto(row.allocation,
                                                             f"allocations[{short_name(row.server_name)}]")
    return allocations


def predictions_to_proto(predictions: Mapping[str, m.Prediction]) -> list[optimizer_pb2.CurrentPrediction]:
    """Predictions at the current allocations -> proto rows, sorted by server name."""
    return [to_proto(p, optimizer_pb2.CurrentPrediction()) for _, p in sorted(predictions.items())]


def predictions_from_proto(rows: Iterable[optimizer_pb2.CurrentPrediction]) -> dict[str, m.Prediction]:
    """CurrentPrediction rows -> {server name: Prediction}."""
    return {r.server_name: from_proto(r, m.Prediction, "current") for r in rows}


def notices_to_proto(notices: Iterable[m.Notice]) -> list[actuator_pb2.ServerNotice]:
    """Notices -> proto."""
    return [to_proto(n, actuator_pb2.ServerNotice()) for n in notices]


def notices_from_proto(rows: Iterable[actuator_pb2.ServerNotice]) -> list[m.Notice]:
    """ServerNotice rows -> Notices; a type other than Normal or Warning, or an empty reason, raises
    InvalidInputError."""
    return [from_proto(row, m.Notice, f"notices[{i}]") for i, row in enumerate(rows)]


def solution_from_proto(msg: optimizer_pb2.OptimizeResponse) -> m.Solution:
    """OptimizeResponse -> Solution."""
    return m.Solution(allocations=allocations_from_proto(msg.allocations),
                      unallocated={u.server_name: u.reason for u in msg.unallocated})


def actuation_result_to_proto(result: m.ActuationResult) -> actuator_pb2.ActuationResult:
    """ActuationResult -> proto."""
    return to_proto(result, actuator_pb2.ActuationResult())


def actuation_result_from_proto(msg: actuator_pb2.ActuationResult, field: str = "results") -> m.ActuationResult:
    """Proto -> ActuationResult; an unspecified outcome raises InvalidInputError naming ``field``."""
    return from_proto(msg, m.ActuationResult, field)


def managed_servers_from_proto(rows: Iterable[types_pb2.ManagedServer],
                               field: str = "managed") -> tuple[m.ManagedServer, ...]:
    """ManagedServer rows -> records; a missing server or ref, negative counts or a repeated server name raise
    InvalidInputError naming the field (``managed[i].server.name``, ``managed[i].ref``, ...)."""
    records: list[m.ManagedServer] = []
    for i, row in enumerate(rows):
        record = from_proto(row, m.ManagedServer, f"{field}[{i}]")
        if any(r.name == record.name for r in records):
            raise InvalidInputError(f"{field}[{i}].server.name {record.name!r} is repeated")
        records.append(record)
    return tuple(records)


def collection_to_proto(collection: m.Collection) -> collector_pb2.CollectResponse:
    """Collection -> CollectResponse (the same fields)."""
    return to_proto(collection, collector_pb2.CollectResponse())


def collection_from_proto(msg: collector_pb2.CollectResponse) -> m.Collection:
    """CollectResponse -> Collection; bad values raise InvalidInputError naming the field."""
    return from_proto(msg, m.Collection, "")
