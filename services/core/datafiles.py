"""Read and write Inferno's JSON data files (docs/model.md s1) as services.core.model values.

Six files in a directory (accelerator-, capacity-, model-, serviceclass-, server-, optimizer-data.json), or
one system-data.json holding ``{"system": {...}}``; solution-data.json for answers. Keys match
case-insensitively, as Inferno's Go decoder does. Unknown keys, and values Inferno tolerates by falling
back (a service-class priority outside 1..100 becomes 100; capacity for a card type that no accelerator has is
never used), are reported as warnings naming file, JSON path and value (strict mode raises). Every other
problem raises DataFileError naming file, JSON path and value: among them a negative ``accCount`` (0 keeps
Inferno's meaning, 1 accelerator) and a ``multiplicity`` below 1. Errors found by cross-reference checks carry
the same full path as single-field errors: ``$.models[2].acc`` in model-data.json, ``$.system.modelData.models[2]
.acc`` in a system-data.json. Every number must be finite and within its physical bound (services.core.bounds,
docs/model.md s1); a file that is not UTF-8, holds a number of more than 4,300 digits or nests too deeply is a
DataFileError too, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from services.core import bounds as b
from services.core import inferno_json
from services.core import model as m
from services.core.datafields import Reader, Report
from services.core.errors import DataFileError

FILES = {
    "accelerators": "accelerator-data.json",
    "capacity": "capacity-data.json",
    "models": "model-data.json",
    "service_classes": "serviceclass-data.json",
    "servers": "server-data.json",
    "optimizer": "optimizer-data.json",
}
SYSTEM_FILE = "system-data.json"
SOLUTION_FILE = "solution-data.json"
_SYSTEM_KEYS = {"accelerators": "acceleratorData", "capacity": "capacityData", "models": "modelData",
                "service_classes": "serviceClassData", "servers": "serverData", "optimizer": "optimizerData"}


@dataclass(frozen=True, slots=True)
class LoadedSystem:
    """A system read from data files, with the warnings (unknown keys) met on the way."""

    system: m.SystemData
    warnings: tuple[str, ...] = ()


def read_json(path: str) -> Any:
    """The JSON document in the file at ``path``; DataFileError (file name, ``$``, reason) when it is missing,
    unreadable, not UTF-8, not JSON, nested too deeply or holds a number of more than 4,300 digits."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataFileError(name, "$", f"file not found at {path}") from None
    except json.JSONDecodeError as err:
        raise DataFileError(name, "$", f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise DataFileError(name, "$", f"not UTF-8 text: byte {err.object[err.start:err.start + 1]!r} at offset "
                                       f"{err.start}") from None
    except RecursionError:
        raise DataFileError(name, "$", "objects or lists nested too deeply") from None
    except ValueError as err:  # a number of more than sys.get_int_max_str_digits() (4,300) digits
        if "digits" in str(err):
            raise DataFileError(name, "$", "invalid JSON: a number of more than 4,300 digits") from None
        raise DataFileError(name, "$", f"invalid JSON: {b.short(str(err), 120)}") from None
    except OSError as err:
        raise DataFileError(name, "$", f"cannot read {path}: {err.strerror}") from None


def _accelerator(r: Reader) -> m.Accelerator:
    power = r.obj("power", optional=True)
    return m.Accelerator(
        name=r.text("name"), type=r.text("type", default="") or r.text("name"),
        multiplicity=r.positive("multiplicity", default=1, bound=b.ACCELERATORS),
        mem_size_gb=r.number("memSize", default=0.0), mem_bw_gbps=r.number("memBW", default=0.0),
        power=m.PowerProfile() if power is None else m.PowerProfile(
            power.number("idle", default=0.0), power.number("full", default=0.0),
            power.number("midPower", default=0.0), power.number("midUtil", default=0.0, bound=b.FRACTION)),
        cost_per_hour=r.number("cost", default=0.0, bound=b.COST),
    )


def _model_perf(r: Reader) -> m.ModelPerf:
    parms = r.obj("perfParms")
    # Inferno (core/model.go AddPerfDataFromSpec) turns accCount <= 0 into 1; 0 is also what a Go encoder
    # writes for an unset field, so keep 0 -> 1 silently. A negative count is a typo, not a spelling of 1.
    acc_count = r.count("accCount", default=1, bound=b.ACCELERATORS)
    return m.ModelPerf(
        model=r.text("name"), accelerator=r.text("acc"), acc_count=acc_count if acc_count > 0 else 1,
        max_batch_size=r.count("maxBatchSize", default=0, bound=b.BATCH),
        at_tokens=r.count("atTokens", default=0, bound=b.TOKENS),
        perf=m.PerfParms(parms.number("alpha", bound=b.TIME_MS), parms.number("beta", bound=b.TIME_MS),
                         parms.number("gamma", bound=b.TIME_MS),
                         parms.number("ttftOverhead", default=0.0, bound=b.TIME_MS)),
    )


def _service_class(r: Reader) -> m.ServiceClass:
    priority = r.integer("priority", default=m.LOWEST_PRIORITY)
    if not 1 <= priority <= 100:
        # Inferno maps an out-of-range priority to the lowest; do the same, but say so.
        r.warn("priority", f"priority {priority} outside 1..100, using {m.LOWEST_PRIORITY} (the lowest)")
    targets = tuple(
        m.ModelTarget(model=t.text("model"), slo_itl_ms=t.number("slo-itl", default=0.0, bound=b.TIME_MS),
                      slo_ttft_ms=t.number("slo-ttft", default=0.0, bound=b.TIME_MS),
                      slo_tps=t.number("slo-tps", default=0.0, bound=b.TPS),
                      **{m.percentile_field(metric, q): t.number(m.percentile_key(metric, q), default=0.0,
                                                                 bound=b.TIME_MS)
                         for metric in ("itl", "ttft") for q in m.SLO_PERCENTILES})
        for t in r.items("modelTargets", optional=True)
    )
    _unique((t.model for t in targets), r, "modelTargets", "model")
    return m.ServiceClass(name=r.text("name"), priority=priority if 1 <= priority <= 100 else m.LOWEST_PRIORITY,
                          targets=targets)


def _load(r: Reader | None) -> m.Load:
    if r is None:
        return m.Load()
    out_tokens = r.number("avgOutTokens", default=0.0, bound=b.TOKENS)
    if 0 < out_tokens < b.MIN_AVG_OUT_TOKENS:
        raise r.error("avgOutTokens", f"expected 0 (no load) or at least {b.MIN_AVG_OUT_TOKENS:g} output token "
                                      f"per request (every completed request generates one), got {out_tokens!r}")
    return m.Load(r.number("arrivalRate", default=0.0, bound=b.RATE_RPM),
                  r.number("avgInTokens", default=0.0, bound=b.TOKENS), out_tokens,
                  _measured(r, "outTokensC2"))


def _measured(r: Reader, key: str) -> float | None:
    """An optional measurement within bounds.C2, or None when the key is absent."""
    return r.number(key, bound=b.C2) if r.has(key) else None


def _allocation(r: Reader | None) -> m.Allocation:
    if r is None:
        return m.Allocation()
    return m.Allocation(
        accelerator=r.text("accelerator", default=""),
        num_replicas=r.count("numReplicas", default=0, bound=b.REPLICAS),
        max_batch=r.count("maxBatch", default=0, bound=b.BATCH),
        cost_per_hour=r.number("cost", default=0.0, bound=b.ALLOCATION_COST),
        itl_ms=r.number("itlAverage", default=0.0), ttft_ms=r.number("ttftAverage", default=0.0),
        load=_load(r.obj("load", optional=True)), max_queue=r.count("maxQueue", default=0, bound=b.QUEUE),
        saturated=r.flag("saturated", default=False),
        unserved_rate_rpm=r.number("unservedRate", default=0.0, bound=b.RATE_RPM),
    )


def _server(r: Reader) -> m.Server:
    desired = r.obj("desiredAlloc", optional=True)
    return m.Server(
        name=r.text("name"), service_class=r.text("class", default="") or m.DEFAULT_CLASS,
        model=r.text("model"), keep_accelerator=r.flag("keepAccelerator", default=False),
        min_replicas=r.count("minNumReplicas", default=0, bound=b.REPLICAS),
        max_batch_size=r.count("maxBatchSize", default=0, bound=b.BATCH),
        max_queue_size=r.count("maxQueueSize", default=0, bound=b.QUEUE),
        current=_allocation(r.obj("currentAlloc", optional=True)),
        desired=None if desired is None else _allocation(desired),
    )


def _settings(r: Reader | None) -> m.OptimizerSettings:
    if r is None:
        return m.OptimizerSettings()
    d = m.OptimizerSettings()
    return m.OptimizerSettings(
        unlimited=r.flag("unlimited", default=d.unlimited), heterogeneous=r.flag("heterogeneous", default=False),
        milp_solver=r.flag("milpSolver", default=False), use_cplex=r.flag("useCplex", default=False),
        delayed_best_effort=r.flag("delayedBestEffort", default=False),
        saturation_policy=r.choice("saturationPolicy", m.SaturationPolicy, d.saturation_policy),
        service_model=r.choice("serviceModel", m.ServiceModel, d.service_model),
        blocking_bound=r.number("blockingBound", default=d.blocking_bound, bound=b.FRACTION),
        time_limit_s=r.number("timeLimitSeconds", default=d.time_limit_s, bound=b.TIME_LIMIT_S),
        output_c2=r.number("outputC2", default=d.output_c2, bound=b.C2),
        token_budget=r.positive("tokenBudget", d.token_budget, bound=b.TOKENS),
        solver=r.choice("solver", m.SolverKind, d.solver),
        robustness=_robustness(r.obj("robustness", optional=True)),
    )


def _deviation(r: Reader, key: str, default: m.Deviation) -> m.Deviation:
    """``key`` as one relative deviation for alpha, beta and gamma, or an object of the three (each defaulting
    to ``default``'s)."""
    if r.is_object(key):
        d = r.obj(key)
        return m.Deviation(d.number("alpha", default=default.alpha, bound=b.DEVIATION),
                           d.number("beta", default=default.beta, bound=b.DEVIATION),
                           d.number("gamma", default=default.gamma, bound=b.DEVIATION))
    if not r.is_present(key):
        return default
    value = r.number(key, bound=b.DEVIATION)
    return m.Deviation(value, value, value)


def _robustness(r: Reader | None) -> m.Robustness | None:
    """The ``robustness`` section (docs/model.md s10): gamma, maxDeviation (number or {alpha, beta, gamma}),
    models: [{name, acc, maxDeviation}]."""
    if r is None:
        return None
    default = _deviation(r, "maxDeviation", m.Deviation())
    entries = []
    for e in r.items("models", optional=True):
        entries.append((e.text("name"), e.text("acc"), _deviation(e, "maxDeviation", default)))
        if not e.is_present("maxDeviation"):
            raise e.error("maxDeviation", "required key is missing")
    seen: set[tuple[str, str]] = set()
    for i, (model, acc, _) in enumerate(entries):
        if (model, acc) in seen:
            raise DataFileError(r.file, f"{r.path}.models[{i}]", f"duplicate name/acc {model!r}/{acc!r}")
        seen.add((model, acc))
    return m.Robustness(gamma=r.number("gamma", default=0.0, bound=b.ROBUST_BUDGET), default=default,
                        deviations=tuple(entries))


def _capacity(r: Reader | None) -> m.Capacity:
    if r is None:
        return m.Capacity()
    entries = [(e.text("type"), e.count("count", bound=b.CAPACITY)) for e in r.items("count", optional=True)]
    _unique((t for t, _ in entries), r, "count", "type")
    return m.Capacity(dict(entries))


def _unique(names: Iterable[str], r: Reader, list_key: str, name_key: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise DataFileError(r.file, f"{r.path}.{list_key}[{index}].{name_key}", f"duplicate name {name!r}")
        seen.add(name)


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a section was read: its file and the JSON path of the section's object (``$`` for a file of its
    own, ``$.system.modelData`` inside system-data.json), so cross-reference errors name the full path."""

    file: str
    path: str

    def at(self, relative: str) -> tuple[str, str]:
        return self.file, f"{self.path}.{relative}"


def _check_references(system: m.SystemData, where: dict[str, _Where], report: Report) -> None:
    _unique_by(system.accelerators, lambda a: a.name, where["accelerators"], "accelerators", "name")
    _unique_by(system.service_classes, lambda c: c.name, where["service_classes"], "serviceClasses", "name")
    _unique_by(system.servers, lambda s: s.name, where["servers"], "servers", "name")
    _unique_by(system.models, lambda p: (p.model, p.accelerator), where["models"], "models", "name/acc")
    accelerators = {a.name for a in system.accelerators}
    for i, perf in enumerate(system.models):
        if perf.accelerator not in accelerators:
            raise DataFileError(*where["models"].at(f"models[{i}].acc"),
                                f"unknown accelerator {perf.accelerator!r}")
    classes = {c.name for c in system.service_classes}
    models = {p.model for p in system.models}
    for i, server in enumerate(system.servers):
        if server.service_class not in classes:
            raise DataFileError(*where["servers"].at(f"servers[{i}].class"),
                                f"unknown service class {server.service_class!r}")
        if server.model not in models:  # as over gRPC: the optimizer leaves it unallocated, with the reason
            report.warn(*where["servers"].at(f"servers[{i}].model"),
                        f"model {server.model!r} has no performance data: the server stays unallocated")
    types = {a.type for a in system.accelerators}
    # Capacity entries keep their file order (duplicates were rejected), so the index is the file's.
    for i, card_type in enumerate(system.capacity.counts):
        if card_type not in types:
            report.warn(*where["capacity"].at(f"count[{i}].type"),
                        f"no accelerator has type {card_type!r}, its capacity is never used "
                        f"(types: {', '.join(sorted(types)) or 'none'})")


def _check_robustness(system: m.SystemData, where: _Where, report: Report) -> None:
    """A deviation for a (model, accelerator) pair without model data is never used: a warning (strict: error)."""
    robust = system.optimizer.robustness
    if robust is None:
        return
    pairs = {(p.model, p.accelerator) for p in system.models}
    for i, (model, acc, _) in enumerate(robust.deviations):
        if (model, acc) not in pairs:
            report.warn(*where.at(f"optimizer.robustness.models[{i}]"),
                        f"no model data for {model!r} on {acc!r}, this deviation is never used")


def _unique_by(items: Iterable[Any], key: Callable[[Any], Any], where: _Where, list_key: str, name_key: str) -> None:
    seen: set[Any] = set()
    for index, item in enumerate(items):
        if key(item) in seen:
            raise DataFileError(*where.at(f"{list_key}[{index}].{name_key}"), f"duplicate name {key(item)!r}")
        seen.add(key(item))


def _build(readers: dict[str, Reader | None], files: dict[str, str], report: Report) -> LoadedSystem:
    def section(name: str, key: str, parse: Callable[[Reader], Any]) -> tuple[Any, ...]:
        reader = readers[name]
        return () if reader is None else tuple(parse(item) for item in reader.items(key, optional=True))

    system = m.SystemData(
        accelerators=section("accelerators", "accelerators", _accelerator),
        models=section("models", "models", _model_perf),
        service_classes=section("service_classes", "serviceClasses", _service_class),
        servers=section("servers", "servers", _server),
        optimizer=_settings(readers["optimizer"] and readers["optimizer"].obj("optimizer", optional=True)),
        capacity=_capacity(readers["capacity"]),
    )
    where = {section: _Where(files[section], "$" if reader is None else reader.path)
             for section, reader in readers.items()}
    _check_references(system, where, report)
    _check_robustness(system, where["optimizer"], report)
    return LoadedSystem(system=system, warnings=report.finish())


def load_system_dir(path: str, strict: bool = False, require_servers: bool = True) -> LoadedSystem:
    """Read the six Inferno data files in directory ``path``.

    capacity-data.json and optimizer-data.json may be absent (no capacity, default settings), and so may
    server-data.json when ``require_servers`` is False (the controller's static data: servers come from the
    cluster); the others are required. Raises DataFileError naming file, JSON path and value; in ``strict``
    mode an unknown key raises too, otherwise it is returned as a warning.
    """
    report = Report(strict)
    readers: dict[str, Reader | None] = {}
    for section, name in FILES.items():
        file_path = os.path.join(path, name)
        optional = section in ("capacity", "optimizer") or (section == "servers" and not require_servers)
        if optional and not os.path.exists(file_path):
            readers[section] = None
            continue
        readers[section] = Reader.root(read_json(file_path), name, report)
    return _build(readers, dict(FILES), report)


def load_system_file(path: str, strict: bool = False) -> LoadedSystem:
    """Read one system-data.json (``{"system": {acceleratorData: {...}, ...}}``); errors as load_system_dir."""
    name = os.path.basename(path)
    report = Report(strict)
    system = Reader.root(read_json(path), name, report).obj("system")
    readers = {section: system.obj(key, optional=section in ("capacity", "optimizer"))
               for section, key in _SYSTEM_KEYS.items()}
    return _build(readers, {section: name for section in FILES}, report)


def load_capacity(path: str) -> m.Capacity:
    """Read capacity-data.json alone (re-read every control cycle). Raises DataFileError."""
    report = Report(strict=False)
    return _capacity(Reader.root(read_json(path), os.path.basename(path), report))


def read_solution(path: str) -> m.Solution:
    """Read solution-data.json (``{"allocations": {server: allocation}}``). Raises DataFileError."""
    root = Reader.root(read_json(path), os.path.basename(path), Report(strict=False))
    allocations = root.obj("allocations")
    return m.Solution(allocations={name: _allocation(alloc) for name, alloc in allocations.entries()})


def _write_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (temp file + rename), so readers never see half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4)
        handle.write("\n")
    os.replace(tmp, path)


def write_system_dir(path: str, system: m.SystemData) -> None:
    """Write the six Inferno data files into directory ``path`` (created if needed)."""
    os.makedirs(path, exist_ok=True)
    for section, content in inferno_json.system_sections(system).items():
        _write_json(os.path.join(path, FILES[section]), content)


def write_system_file(path: str, system: m.SystemData) -> None:
    """Write one system-data.json holding all six sections under ``{"system": {...}}``."""
    sections = inferno_json.system_sections(system)
    _write_json(path, {"system": {_SYSTEM_KEYS[section]: content for section, content in sections.items()}})


def write_solution(path: str, solution: m.Solution) -> None:
    """Write solution-data.json in Inferno's format."""
    _write_json(path, inferno_json.solution_json(solution))
