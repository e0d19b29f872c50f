"""Environment -> one frozen Config, read once at start; a bad value fails at once naming the variable.

Every variable any service reads is declared in VARIABLES below (the manifests test checks that the
Deployment sets exactly these). Defaults follow Inferno's ports (3300-3303) and the architecture notes.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from services.core.bounds import MAX_REPLICAS, namespace_problem
from services.core.errors import InvalidInputError

DEFAULT_CYCLE_LOG = "~/.local/state/inferno/cycles.jsonl"
"""The cycle log outside a container (the XDG state directory); the manifests set an in-pod path."""

_PROM_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class ConfigError(InvalidInputError):
    """An environment variable has a bad value; the message names the variable and the value."""


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of the four services; units in names. Build it with load_config(os.environ)."""

    data_path: str = "/etc/data"
    control_period_s: float = 60.0
    watch_namespaces: tuple[str, ...] = ()
    bind_address: str = "127.0.0.1"
    """The gRPC services' address: loopback, since the four containers share the pod's network."""
    http_bind_address: str = "0.0.0.0"
    """The controller's HTTP API, the actuator's /metrics and the gRPC health ports (kubelet, Prometheus)."""
    controller_port: int = 3300
    collector_port: int = 3301
    optimizer_port: int = 3302
    actuator_port: int = 3303
    actuator_metrics_port: int = 3304
    collector_health_port: int = 0
    optimizer_health_port: int = 0
    actuator_health_port: int = 0
    collector_address: str = "127.0.0.1:3301"
    optimizer_address: str = "127.0.0.1:3302"
    actuator_address: str = "127.0.0.1:3303"
    invoke_token_path: str = ""
    grpc_deadline_s: float = 30.0
    shutdown_grace_s: float = 5.0
    prometheus_url: str = ""
    prometheus_token_path: str = ""
    prometheus_ca_path: str = ""
    prometheus_window: str = "1m"
    prometheus_timeout_s: float = 5.0
    capacity_from_nodes: bool = False
    dry_run: bool = False
    max_replica_change: int = 16
    max_replicas: int = 100
    scale_down_stabilization_s: float = 300.0
    accelerator_node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    set_max_num_seqs: bool = False
    cycle_log_path: str = field(default_factory=lambda: _path(DEFAULT_CYCLE_LOG))
    cycle_log_max_bytes: int = 10 * 1024 * 1024
    log_level: str = "info"
    solver: str = "exact"
    solver_time_limit_s: float = 10.0
    tuner: str = "advisory"
    """Online perfParms tuning (docs/model.md s12): off, advisory (estimate and report) or on (adopt)."""
    forecast: bool = True
    forecast_history_s: float = 600.0
    startup_delay_s: float = 120.0
    fast_path: bool = True
    fast_path_interval_s: float = 10.0
    fast_path_window_s: float = 30.0
    fast_path_cooldown_s: float = 60.0
    fast_path_waiting_per_replica: float = 8.0
    fast_path_kv_cache_usage: float = 0.9
    fast_path_ratio: float = 2.0

    def health_address(self, port: int) -> str:
        """Where a gRPC service answers health checks alone ("" when ``port`` is 0: no health port)."""
        return f"{self.http_bind_address}:{port}" if port else ""


def _text(value: str) -> str:
    return value.strip()


def _path(value: str) -> str:
    return os.path.expanduser(value.strip())


def _number(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("must be a finite non-negative number")
    return number


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number 0..65535")
    return port


def _count(value: str) -> int:
    count = int(value)
    if count < 0:
        raise ValueError("must be a non-negative integer")
    return count


def _replicas(value: str) -> int:
    count = int(value)
    if not 1 <= count <= MAX_REPLICAS:
        raise ValueError(f"must be a whole number 1..{MAX_REPLICAS}")
    return count


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _switch(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("on", "true", "1"):
        return True
    if lowered in ("off", "false", "0", ""):
        return False
    raise ValueError("must be on or off")


def _share(value: str) -> float:
    number = _number(value)
    if number > 1:
        raise ValueError("must be a fraction between 0 and 1")
    return number


def _namespaces(value: str) -> tuple[str, ...]:
    names = tuple(sorted({part.strip() for part in value.split(",") if part.strip()}))
    for name in names:
        problem = namespace_problem(name)
        if problem:
            raise ValueError(problem)
    return names


def _duration(value: str) -> str:
    if not _PROM_DURATION.match(value.strip()):
        raise ValueError("must be a Prometheus duration such as 30s, 1m or 1h30m")
    return value.strip()


def _positive(value: str) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("must be a finite number > 0")
    return number


def _choice(*options: str) -> Callable[[str], str]:
    """A parser accepting one of ``options`` (case and surrounding blanks ignored)."""
    listed = " or ".join(options) if len(options) == 2 else "one of " + ", ".join(options)

    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in options:
            raise ValueError(f"must be {listed}")
        return lowered

    return parse


_level = _choice("debug", "info", "warning", "error")
_solver = _choice("exact", "greedy")
_tuner = _choice("off", "advisory", "on")


def _node_labels(value: str) -> Mapping[str, Mapping[str, str]]:
    if not value.strip():
        return MappingProxyType({})
    parsed = json.loads(value)
    if not isinstance(parsed, dict) or not all(
        isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())
        for labels in parsed.values()
    ):
        raise ValueError('must be a JSON object {"accelerator": {"node-label": "value"}}')
    return MappingProxyType({acc: MappingProxyType(dict(labels)) for acc, labels in parsed.items()})


VARIABLES: Mapping[str, tuple[str, Callable[[str], Any]]] = MappingProxyType({
    "INFERNO_DATA_PATH": ("data_path", _text),
    "INFERNO_CONTROL_PERIOD": ("control_period_s", _number),
    "WATCH_NAMESPACE": ("watch_namespaces", _namespaces),
    "INFERNO_BIND_ADDRESS": ("bind_address", _text),
    "INFERNO_HTTP_BIND_ADDRESS": ("http_bind_address", _text),
    "INFERNO_CONTROLLER_PORT": ("controller_port", _port),
    "INFERNO_COLLECTOR_PORT": ("collector_port", _port),
    "INFERNO_OPTIMIZER_PORT": ("optimizer_port", _port),
    "INFERNO_ACTUATOR_PORT": ("actuator_port", _port),
    "INFERNO_ACTUATOR_METRICS_PORT": ("actuator_metrics_port", _port),
    "INFERNO_COLLECTOR_HEALTH_PORT": ("collector_health_port", _port),
    "INFERNO_OPTIMIZER_HEALTH_PORT": ("optimizer_health_port", _port),
    "INFERNO_ACTUATOR_HEALTH_PORT": ("actuator_health_port", _port),
    "INFERNO_COLLECTOR_ADDRESS": ("collector_address", _text),
    "INFERNO_OPTIMIZER_ADDRESS": ("optimizer_address", _text),
    "INFERNO_ACTUATOR_ADDRESS": ("actuator_address", _text),
    "INFERNO_INVOKE_TOKEN_PATH": ("invoke_token_path", _text),
    "INFERNO_GRPC_DEADLINE": ("grpc_deadline_s", _number),
    "INFERNO_SHUTDOWN_GRACE": ("shutdown_grace_s", _number),
    "INFERNO_PROMETHEUS_URL": ("prometheus_url", _text),
    "INFERNO_PROMETHEUS_TOKEN_PATH": ("prometheus_token_path", _text),
    "INFERNO_PROMETHEUS_CA_PATH": ("prometheus_ca_path", _text),
    "INFERNO_PROMETHEUS_WINDOW": ("prometheus_window", _duration),
    "INFERNO_PROMETHEUS_TIMEOUT": ("prometheus_timeout_s", _number),
    "INFERNO_CAPACITY_FROM_NODES": ("capacity_from_nodes", _flag),
    "INFERNO_DRY_RUN": ("dry_run", _flag),
    "INFERNO_MAX_REPLICA_CHANGE": ("max_replica_change", _count),
    "INFERNO_MAX_REPLICAS": ("max_replicas", _replicas),
    "INFERNO_SCALE_DOWN_STABILIZATION": ("scale_down_stabilization_s", _number),
    "INFERNO_ACCELERATOR_NODE_LABELS": ("accelerator_node_labels", _node_labels),
    "INFERNO_SET_MAX_NUM_SEQS": ("set_max_num_seqs", _flag),
    "INFERNO_CYCLE_LOG": ("cycle_log_path", _path),
    "INFERNO_CYCLE_LOG_MAX_BYTES": ("cycle_log_max_bytes", _count),
    "INFERNO_LOG_LEVEL": ("log_level", _level),
    "INFERNO_SOLVER": ("solver", _solver),
    "INFERNO_SOLVER_TIME_LIMIT": ("solver_time_limit_s", _positive),
    "INFERNO_TUNER": ("tuner", _tuner),
    "INFERNO_FORECAST": ("forecast", _switch),
    "INFERNO_FORECAST_HISTORY": ("forecast_history_s", _positive),
    "INFERNO_STARTUP_DELAY": ("startup_delay_s", _number),
    "INFERNO_FAST_PATH": ("fast_path", _switch),
    "INFERNO_FAST_PATH_INTERVAL": ("fast_path_interval_s", _positive),
    "INFERNO_FAST_PATH_WINDOW": ("fast_path_window_s", _positive),
    "INFERNO_FAST_PATH_COOLDOWN": ("fast_path_cooldown_s", _number),
    "INFERNO_FAST_PATH_WAITING": ("fast_path_waiting_per_replica", _number),
    "INFERNO_FAST_PATH_KV_USAGE": ("fast_path_kv_cache_usage", _share),
    "INFERNO_FAST_PATH_RATIO": ("fast_path_ratio", _number),
})
"""Environment variable -> (Config field, parser). The only variables the services read."""


def load_config(environ: Mapping[str, str]) -> Config:
    """Build the Config from ``environ`` (pass ``os.environ``); unset variables keep their defaults.

    Raises ConfigError naming the variable and its value when a value does not parse.
    """
    values: dict[str, Any] = {}
    for variable, (field_name, parse) in VARIABLES.items():
        raw = environ.get(variable)
        if raw is None:
            continue
        try:
            values[field_name] = parse(raw)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"environment variable {variable}={raw!r} is invalid: {err}") from None
    return Config(**values)
