"""Configuration from the environment: defaults, parsing, and a failure that names the variable."""

from __future__ import annotations

import os
import re

import pytest

from services.runtime.config import VARIABLES, Config, ConfigError, load_config


def test_empty_environment_gives_the_documented_defaults() -> None:
    config = load_config({})
    assert config == Config()
    assert (config.controller_port, config.collector_port, config.optimizer_port, config.actuator_port) == (
        3300, 3301, 3302, 3303)
    assert config.control_period_s == 60 and config.prometheus_window == "1m"


def test_values_are_parsed_into_typed_fields() -> None:
    config = load_config({
        "WATCH_NAMESPACE": "b, a,,a", "INFERNO_CONTROL_PERIOD": "0", "INFERNO_DRY_RUN": "true",
        "INFERNO_PROMETHEUS_WINDOW": "1m30s", "INFERNO_ACCELERATOR_NODE_LABELS": '{"A100": {"gpu": "a100"}}',
    })
    assert config.watch_namespaces == ("a", "b")
    assert config.control_period_s == 0.0 and config.dry_run is True
    assert config.prometheus_window == "1m30s"
    assert dict(config.accelerator_node_labels["A100"]) == {"gpu": "a100"}


@pytest.mark.parametrize(("variable", "value"), [
    pytest.param("INFERNO_CONTROL_PERIOD", "-5", id="negative-period"),
    pytest.param("INFERNO_CONTROL_PERIOD", "soon", id="non-numeric-period"),
    pytest.param("INFERNO_SCALE_DOWN_STABILIZATION", "inf", id="infinite-window"),
    pytest.param("INFERNO_GRPC_DEADLINE", "nan", id="nan-deadline"),
    pytest.param("INFERNO_OPTIMIZER_PORT", "70000", id="port-out-of-range"),
    pytest.param("INFERNO_DRY_RUN", "maybe", id="bad-flag"),
    pytest.param("INFERNO_PROMETHEUS_WINDOW", "60", id="window-without-unit"),
    pytest.param("INFERNO_ACCELERATOR_NODE_LABELS", '["A100"]', id="labels-not-a-map"),
    pytest.param("INFERNO_LOG_LEVEL", "loud", id="bad-level"),
])
def test_bad_value_fails_naming_the_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{variable}={value!r}")):
        load_config({variable: value})


def test_every_declared_variable_maps_to_a_config_field() -> None:
    fields = set(Config.__dataclass_fields__)
    assert {field for field, _ in VARIABLES.values()} <= fields


def test_the_cycle_log_defaults_to_the_users_state_directory_outside_a_container() -> None:
    path = load_config({}).cycle_log_path
    assert path == os.path.join(os.path.expanduser("~"), ".local", "state", "inferno", "cycles.jsonl")
    assert load_config({"INFERNO_CYCLE_LOG": "~/x/cycles.jsonl"}).cycle_log_path == os.path.expanduser(
        "~/x/cycles.jsonl")
    assert load_config({"INFERNO_CYCLE_LOG": ""}).cycle_log_path == ""
