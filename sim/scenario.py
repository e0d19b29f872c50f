"""Scenario files (YAML or JSON in sim/scenarios/): load, validate, and turn them into frozen dataclasses.

A scenario names one inference server (model on an accelerator, vLLM limits, perfParms), its SLO, the load
(phases in the load generator's language, emulator/loadshape.py, plus ``sine`` phases), Kubernetes timing,
metrics scraping, the control period and per-policy settings. Every field is checked: a missing, unknown or
out-of-range field is a ScenarioError naming the file, the field path and the value. See
sim/scenarios/seed001-stairstep.yaml for a fully commented example.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from emulator.loadshape import Length, Phase, Schedule, parse_length
from services.collector.promql import window_seconds
from services.core.errors import InvalidInputError
from services.core.model import SLO_PERCENTILES

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
SINE_STEP_S = 60.0
"""A sine phase is approximated by linear ramps of this length."""


class ScenarioError(InvalidInputError):
    """A scenario file is missing, unreadable or has a bad field; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Perf:
    """perfParms of the server (ms): iteration = alpha + beta x computed tokens + gamma x KV tokens read."""

    alpha_ms: float
    beta_ms: float
    gamma_ms: float


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """The inference server: names for the optimizer's data, the accelerator and vLLM's limits."""

    name: str
    model: str
    service_class: str
    accelerator: str
    perf: Perf
    max_num_seqs: int
    kv_cache_tokens: int
    max_num_batched_tokens: int
    max_model_len: int
    acc_count: int = 1
    cost_per_hour: float = 1.0
    """Cost units per hour of one accelerator."""


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request SLO: TTFT and mean ITL (TPOT) limits in ms. ``percentile`` 0 reads them as means (Inferno's
    targets: the optimizer sizes for mean TTFT and ITL); 50, 90, 95 or 99 as that percentile (the optimizer
    sizes for `slo-ttft-p90` and `slo-itl-p90`; the run holds the SLO when at least 90% of the requests meet
    both limits)."""

    ttft_ms: float
    itl_ms: float
    percentile: int = 0

    @property
    def reading(self) -> str:
        """"mean" or "p90" etc."""
        return f"p{self.percentile}" if self.percentile else "mean"


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """Arrival-rate schedule and token-length distributions."""

    schedule: Schedule
    prompt_tokens: Length
    output_tokens: Length


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Kubernetes timing and bounds: replicas at t=0, min/max replicas, pod start-up (s)."""

    initial_replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 20
    startup_s: float = 120.0


@dataclass(frozen=True, slots=True)
class MetricsSpec:
    """Prometheus scrape interval (s) and the rate window (a Prometheus duration)."""

    scrape_interval_s: float = 15.0
    window: str = "1m"

    @property
    def window_s(self) -> float:
        """The window in seconds."""
        return float(window_seconds(self.window))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario, validated. ``policies`` maps a policy name to its settings (plain values)."""

    name: str
    description: str
    seed: int
    server: ServerSpec
    slo: Slo
    load: LoadSpec
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    control_period_s: float = 60.0
    drain_limit_s: float = 900.0
    """After the load ends, requests in flight get this long to finish before they count as unfinished."""
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", MappingProxyType({k: MappingProxyType(dict(v))
                                                               for k, v in self.policies.items()}))

    @property
    def duration_s(self) -> float:
        """Length of the load schedule."""
        return self.load.schedule.duration_s

    def policy_settings(self, policy: str) -> Mapping[str, Any]:
        """The settings of ``policy`` (empty when the file gives none)."""
        return self.policies.get(policy, MappingProxyType({}))


class _Reader:
    """Walks a parsed document, recording the field path for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {path}: {message}")

    def section(self, doc: Mapping[str, Any], path: str, allowed: set[str], required: set[str] = frozenset()
                ) -> Mapping[str, Any]:
        if not isinstance(doc, Mapping):
            raise self.fail(path or "(top level)", f"must be a mapping, got {type(doc).__name__} {doc!r}")
        unknown = sorted(set(doc) - allowed)
        if unknown:
            raise self.fail(_join(path, str(unknown[0])), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        missing = sorted(required - set(doc))
        if missing:
            raise self.fail(_join(path, missing[0]), "missing required field")
        return doc

    def number(self, doc: Mapping[str, Any], key: str, path: str, default: float | None = None, *,
               minimum: float = 0.0, exclusive: bool = False, maximum: float = math.inf) -> float:
        if key not in doc:
            if default is None:
                raise self.fail(_join(path, key), "missing required field")
            return default
        value = doc[key]
        where = _join(path, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(where, f"must be a finite number, got {value!r}")
        if value < minimum or (exclusive and value == minimum) or value > maximum:
            bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
            if maximum != math.inf:
                bound += f" and <= {maximum:g}"
            raise self.fail(where, f"must be {bound}, got {value!r}")
        return float(value)

    def integer(self, doc: Mapping[str, Any], key: str, path: str, default: int | None = None, *,
                minimum: int = 0) -> int:
        if key not in doc and default is not None:
            return default
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            if key not in doc:
                raise self.fail(_join(path, key), "missing required field")
            raise self.fail(_join(path, key), f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.fail(_join(path, key), f"must be >= {minimum}, got {value!r}")
        return value

    def text(self, doc: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        if key not in doc and default is not None:
            return default
        value = doc.get(key)
        if not isinstance(value, str) or not value.strip():
            if key not in doc:
                raise self.fail(_join(path, key), "missing required field")
            raise self.fail(_join(path, key), f"must be a non-empty string, got {value!r}")
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _perf(r: _Reader, doc: Any, path: str) -> Perf:
    doc = r.section(doc, path, {"alpha_ms", "beta_ms", "gamma_ms"}, {"alpha_ms", "beta_ms", "gamma_ms"})
    return Perf(r.number(doc, "alpha_ms", path), r.number(doc, "beta_ms", path), r.number(doc, "gamma_ms", path))


def _server(r: _Reader, doc: Any) -> ServerSpec:
    keys = {"name", "model", "service_class", "accelerator", "perf", "max_num_seqs", "kv_cache_tokens",
            "max_num_batched_tokens", "max_model_len", "acc_count", "cost_per_hour"}
    doc = r.section(doc, "server", keys, {"name", "model", "accelerator", "perf", "max_num_seqs", "kv_cache_tokens"})
    max_model_len = r.integer(doc, "max_model_len", "server", 1 << 20, minimum=2)
    kv = r.integer(doc, "kv_cache_tokens", "server", minimum=1)
    if kv < max_model_len and "max_model_len" in doc:
        raise r.fail("server.kv_cache_tokens", f"must hold one request of max_model_len {max_model_len}, got {kv}")
    return ServerSpec(
        name=r.text(doc, "name", "server"), model=r.text(doc, "model", "server"),
        service_class=r.text(doc, "service_class", "server", "Premium"),
        accelerator=r.text(doc, "accelerator", "server"), perf=_perf(r, doc.get("perf"), "server.perf"),
        max_num_seqs=r.integer(doc, "max_num_seqs", "server", minimum=1), kv_cache_tokens=kv,
        max_num_batched_tokens=r.integer(doc, "max_num_batched_tokens", "server", 8192, minimum=1),
        max_model_len=max_model_len, acc_count=r.integer(doc, "acc_count", "server", 1, minimum=1),
        cost_per_hour=r.number(doc, "cost_per_hour", "server", 1.0))


def _slo(r: _Reader, doc: Any) -> Slo:
    doc = r.section(doc, "slo", {"ttft_ms", "itl_ms", "percentile"}, {"ttft_ms", "itl_ms"})
    percentile = r.integer(doc, "percentile", "slo", 0, minimum=0)
    if percentile not in (0, *SLO_PERCENTILES):
        raise r.fail("slo.percentile", f"must be 0 (means) or one of {', '.join(map(str, SLO_PERCENTILES))}, "
                                       f"got {percentile!r}")
    return Slo(r.number(doc, "ttft_ms", "slo", exclusive=True), r.number(doc, "itl_ms", "slo", exclusive=True),
               percentile)


def _sine(r: _Reader, doc: Any, path: str) -> list[Phase]:
    """A sine ``mean_rps + amplitude_rps x sin(2 pi (t / period_s) + phase_rad)`` as linear ramps of 60 s."""
    doc = r.section(doc, path, {"mean_rps", "amplitude_rps", "period_s", "duration_s", "phase_rad"},
                    {"mean_rps", "amplitude_rps", "period_s", "duration_s"})
    mean, amplitude = r.number(doc, "mean_rps", path), r.number(doc, "amplitude_rps", path)
    if amplitude > mean:
        raise r.fail(_join(path, "amplitude_rps"), f"must be <= mean_rps ({mean}) so the rate stays >= 0, "
                     f"got {amplitude}")
    period = r.number(doc, "period_s", path, exclusive=True)
    duration = r.number(doc, "duration_s", path, exclusive=True)
    shift = r.number(doc, "phase_rad", path, 0.0, minimum=-math.inf)

    def rate(t: float) -> float:
        return mean + amplitude * math.sin(2 * math.pi * t / period + shift)

    phases, t = [], 0.0
    while t < duration - 1e-9:
        step = min(SINE_STEP_S, duration - t)
        phases.append(Phase(step, rate(t), rate(t + step)))
        t += step
    return phases


def _phases(r: _Reader, doc: Any) -> Schedule:
    if not isinstance(doc, list) or not doc:
        raise r.fail("load.phases", f"must be a non-empty list of phases, got {doc!r}")
    phases: list[Phase] = []
    for i, spec in enumerate(doc):
        path = f"load.phases[{i}]"
        if isinstance(spec, Mapping) and "stairs" in spec:
            s = r.section(r.section(spec, path, {"stairs"})["stairs"], path + ".stairs",
                          {"from_rps", "to_rps", "step_rps", "every_s"}, {"from_rps", "to_rps", "step_rps", "every_s"})
            start, end = r.number(s, "from_rps", path + ".stairs"), r.number(s, "to_rps", path + ".stairs")
            step = r.number(s, "step_rps", path + ".stairs", exclusive=True)
            every = r.number(s, "every_s", path + ".stairs", exclusive=True)
            count = int(math.floor((end - start) / step + 1e-9)) + 1
            phases.extend(Phase(every, start + k * step, start + k * step) for k in range(max(count, 1)))
        elif isinstance(spec, Mapping) and "sine" in spec:
            phases.extend(_sine(r, r.section(spec, path, {"sine"})["sine"], path + ".sine"))
        else:
            spec = r.section(spec, path, {"rate_rps", "to_rps", "duration_s"}, {"rate_rps", "duration_s"})
            rate = r.number(spec, "rate_rps", path)
            phases.append(Phase(r.number(spec, "duration_s", path, exclusive=True), rate,
                                r.number(spec, "to_rps", path, rate)))
    return Schedule(tuple(phases))


def _length(r: _Reader, doc: Mapping[str, Any], key: str, minimum: int) -> Length:
    where = f"load.{key}"
    if key not in doc:
        raise r.fail(where, "missing required field")
    spec = doc[key]
    if isinstance(spec, bool) or (isinstance(spec, int | float) and spec < minimum):
        raise r.fail(where, f"must be a length >= {minimum} or a distribution, got {spec!r}")
    if isinstance(spec, Mapping):
        r.section(spec, where, {"dist", "mean", "min", "max", "low", "high"})
    elif not isinstance(spec, int | float):
        raise r.fail(where, f"must be a number or a distribution mapping, got {spec!r}")
    try:
        return parse_length(spec, minimum)
    except (KeyError, TypeError, ValueError) as err:
        raise r.fail(where, f"bad length distribution {spec!r}: {err}") from err


def _load(r: _Reader, doc: Any) -> LoadSpec:
    doc = r.section(doc, "load", {"phases", "prompt_tokens", "output_tokens"}, {"phases", "prompt_tokens",
                                                                                "output_tokens"})
    return LoadSpec(_phases(r, doc["phases"]), _length(r, doc, "prompt_tokens", 0), _length(r, doc, "output_tokens", 1))


def _cluster(r: _Reader, doc: Any) -> ClusterSpec:
    doc = r.section(doc if doc is not None else {}, "cluster",
                    {"initial_replicas", "min_replicas", "max_replicas", "startup_s"})
    spec = ClusterSpec(r.integer(doc, "initial_replicas", "cluster", 1, minimum=1),
                       r.integer(doc, "min_replicas", "cluster", 1, minimum=1),
                       r.integer(doc, "max_replicas", "cluster", 20, minimum=1),
                       r.number(doc, "startup_s", "cluster", 120.0))
    if spec.max_replicas < max(spec.min_replicas, spec.initial_replicas):
        raise r.fail("cluster.max_replicas", f"must be >= min_replicas and initial_replicas, got {spec.max_replicas}")
    return spec


def _metrics(r: _Reader, doc: Any) -> MetricsSpec:
    doc = r.section(doc if doc is not None else {}, "metrics", {"scrape_interval_s", "window"})
    window = r.text(doc, "window", "metrics", "1m")
    try:
        seconds = window_seconds(window)
    except ValueError as err:
        raise r.fail("metrics.window", str(err)) from err
    interval = r.number(doc, "scrape_interval_s", "metrics", 15.0, exclusive=True)
    if seconds < 2 * interval:
        raise r.fail("metrics.window", f"must span at least two scrapes ({2 * interval} s), got {window!r}")
    return MetricsSpec(interval, window)


POLICY_NAMES = ("inferno", "hpa", "wva-v1", "static", "oracle", "causal")


def parse(doc: Any, source: str) -> Scenario:
    """A validated Scenario from a parsed document; ScenarioError names ``source`` and the bad field."""
    r = _Reader(source)
    doc = r.section(doc, "", {"name", "description", "seed", "server", "slo", "load", "cluster", "metrics",
                              "control_period_s", "drain_limit_s", "policies"}, {"name", "server", "slo", "load"})
    policies = r.section(doc.get("policies") or {}, "policies", set(POLICY_NAMES))
    for name, settings in policies.items():
        path = f"policies.{name}"
        settings = r.section(settings if settings is not None else {}, path, set(_POLICY_KEYS[name]))
        for key, kind in _POLICY_KEYS[name].items():
            if key in settings and kind == "int":
                r.integer(settings, key, path, minimum=1)
            elif key in settings and kind == "number":
                r.number(settings, key, path)
            elif key in settings and settings[key] not in kind:
                raise r.fail(_join(path, key), f"must be one of {', '.join(kind)}, got {settings[key]!r}")
    return Scenario(
        name=r.text(doc, "name", ""), description=str(doc.get("description", "")).strip(),
        seed=r.integer(doc, "seed", "", 1), server=_server(r, doc["server"]), slo=_slo(r, doc["slo"]),
        load=_load(r, doc["load"]), cluster=_cluster(r, doc.get("cluster")), metrics=_metrics(r, doc.get("metrics")),
        control_period_s=r.number(doc, "control_period_s", "", 60.0, exclusive=True),
        drain_limit_s=r.number(doc, "drain_limit_s", "", 900.0),
        policies={k: dict(v or {}) for k, v in policies.items()})


_POLICY_KEYS: Mapping[str, Mapping[str, Any]] = {
    "inferno": {"max_replica_change": "number", "scale_down_stabilization_s": "number"},
    "hpa": {"metric": ("running_waiting", "kv_cache_usage"), "target_per_pod": "number", "tolerance": "number",
            "sync_period_s": "number", "scale_down_stabilization_s": "number"},
    "wva-v1": {"kv_threshold": "number", "queue_threshold": "number", "kv_spare_trigger": "number",
               "queue_spare_trigger": "number", "period_s": "number"},
    "static": {"replicas": "int"},
    "oracle": {},
}
"""Settings each policy accepts: "number" (finite, >= 0), "int" (>= 1) or a tuple of allowed values."""


def resolve(name_or_path: str) -> str:
    """A scenario argument -> a file path: an existing path as is, else sim/scenarios/NAME.{yaml,yml,json}."""
    if os.path.isfile(name_or_path):
        return name_or_path
    for ext in (".yaml", ".yml", ".json"):
        candidate = os.path.join(SCENARIO_DIR, name_or_path + ext)
        if os.path.isfile(candidate):
            return candidate
    known = ", ".join(available())
    raise ScenarioError(f"scenario {name_or_path!r}: no such file, and not one of the shipped scenarios ({known})")


def available() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(os.path.splitext(f)[0] for f in os.listdir(SCENARIO_DIR) if f.endswith((".yaml", ".yml", ".json")))


def load(name_or_path: str) -> Scenario:
    """Read and validate a scenario by shipped name or path. Raises ScenarioError."""
    path = resolve(name_or_path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ScenarioError(f"{path}: cannot be read: {err}") from err
    return parse(doc, os.path.relpath(path))
