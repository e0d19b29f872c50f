"""The Grafana dashboard: every expression names only metrics the code exports, and it shows load, replicas,
latency against the SLOs, cost and the cycles' outcomes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from services.actuator.metrics import ActuatorMetrics
from services.controller.metrics import ControllerMetrics, exported_names
from tests.manifests.conftest import MANIFESTS, find
from tests.manifests.rendering import render

DASHBOARD = MANIFESTS / "grafana" / "inferno-dashboard.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "le", "inf", "nan"}


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression of a dashboard: panel targets' ``expr`` and template variables' queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, label names, strings and ranges left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)              # string literals
    text = re.sub(r"\{[^{}]*\}", "", text)                        # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)                        # ranges, subqueries
    text = re.sub(r"\$\w+", "", text)                             # Grafana variables
    text = re.sub(r"label_values\(([^,()]*),[^()]*\)", r"\1", text)  # label_values(metric, label)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        if not rest.startswith("(") and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_names(ControllerMetrics().registry) | exported_names(ActuatorMetrics().registry)


def test_the_dashboard_has_expressions_in_every_graph_panel(dashboard):
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert [t["expr"] for t in panel["targets"] if t.get("expr")], panel["title"]


def test_every_dashboard_expression_names_only_metrics_the_code_exports(dashboard, exported):
    used = {name for expr in expressions(dashboard) for name in metric_names(expr)}
    assert used, "no metric found in the dashboard"
    assert sorted(used - exported) == []


@pytest.mark.parametrize(("topic", "metrics"), [
    pytest.param("load", {"inferno_server_arrival_rate_requests_per_second", "inferno_server_input_tokens",
                          "inferno_server_output_tokens"}, id="load"),
    pytest.param("replicas", {"inferno_server_current_replicas", "inferno_server_ready_replicas",
                              "inferno_server_desired_replicas"}, id="replicas"),
    pytest.param("latency vs SLO", {f"inferno_server_{kind}_{name}_seconds" for kind in ("observed", "predicted",
                                    "slo") for name in ("itl", "ttft")}, id="latency"),
    pytest.param("cost", {"inferno_total_cost_per_hour", "inferno_server_cost_per_hour"}, id="cost"),
    pytest.param("cycle outcomes", {"inferno_cycles_total", "inferno_actuations_total"}, id="outcomes"),
])
def test_the_dashboard_shows(dashboard, topic, metrics):
    used = {name for expr in expressions(dashboard) for name in metric_names(expr)}
    assert metrics <= used, f"{topic}: missing {sorted(metrics - used)}"


@pytest.mark.parametrize(("expr", "names"), [
    pytest.param('sum by (outcome) (increase(inferno_cycles_total{outcome!="x"}[5m]))', {"inferno_cycles_total"},
                 id="aggregation"),
    pytest.param("histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m]))) / on (server) b", {"a_bucket", "b"},
                 id="matching"),
    pytest.param('label_values(inferno_server_current_replicas{namespace=~"$namespace"}, server)',
                 {"inferno_server_current_replicas"}, id="variable"),
    pytest.param("inferno_missing_metric > bool 1", {"inferno_missing_metric"}, id="unknown-is-found"),
])
def test_metric_names_are_read_out_of_promql(expr, names):
    assert metric_names(expr) == names


def test_the_grafana_kustomization_ships_the_dashboard_for_the_grafana_sidecar(dashboard):
    configmap = find(render(MANIFESTS / "grafana"), "ConfigMap", "inferno-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["inferno-dashboard.json"]) == dashboard
