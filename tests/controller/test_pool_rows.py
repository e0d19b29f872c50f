"""A pool's per-class figures in the cycle record (the row's ``pool_classes``), the controller's /metrics (the
``inferno_server_class_*`` gauges, labelled ``class``) and the cycle table (docs/contract.md s8, s10)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from services.controller.cycle import run_cycle
from services.controller.loop import ControlLoop
from services.controller.metrics import ControllerMetrics
from services.controller.report import cycle_text, pool_lines
from services.core import model as m
from tests.controller.fakes import CAPACITY, MANAGED, SERVER, STATIC, FakeClients
from tests.controller.test_metrics import LABELS, samples

CLASSES = (m.PoolClass("Premium", 0, m.Load(40, 128, 1024)), m.PoolClass("Bronze", 1, m.Load(20, 128, 1024)))
POOL = m.ManagedServer(replace(SERVER, pool_classes=CLASSES), MANAGED.ref, spec_replicas=1, ready_replicas=1)
SYSTEM = replace(STATIC, service_classes=(*STATIC.service_classes,
                                          m.ServiceClass("Bronze", 2, (m.ModelTarget("llama_13b", 160.0, 2000.0),))))
DECIDED = m.Allocation("G2", 2, 38, 46.0, 36.4, 425.2, m.Load(60, 128, 1024), class_rpm=(20.0, 10.0),
                       class_latency_s=(41.5, 120.0))


def _clients(solution: m.Solution | None = None, **kw) -> FakeClients:
    return FakeClients(collection=m.Collection((POOL,)),
                       solution=solution or m.Solution({SERVER.name: DECIDED}), **kw)


def _static():
    return SYSTEM, CAPACITY


def _clock():
    ticks = itertools.count()
    return lambda: next(ticks) * 0.002


def test_a_pool_row_lists_each_classs_rate_bound_and_once_decided_its_rate_per_replica_and_latency() -> None:
    record = run_cycle(1, "t", _static, _clients(), _clock())
    shown = record.as_json()["rows"][0]
    premium_bound = (1000.0 + 80.0 * 1023) / 1000.0  # TTFT + ITL x (K - 1), s
    assert shown["pool_classes"] == (
        {"class": "Premium", "priority": 0, "arrival_rate_rpm": 40.0, "latency_bound_s": pytest.approx(premium_bound),
         "rate_per_replica_rpm": 20.0, "predicted_latency_s": 41.5},
        {"class": "Bronze", "priority": 1, "arrival_rate_rpm": 20.0,
         "latency_bound_s": pytest.approx((2000.0 + 160.0 * 1023) / 1000.0),
         "rate_per_replica_rpm": 10.0, "predicted_latency_s": 120.0})
    assert list(shown)[-6] == "pool_classes"  # added after the decision, before the action's keys
    assert shown["replicas"] == 2 and shown["class"] == "Premium"  # the existing keys unchanged
    skipped = run_cycle(1, "t", _static, _clients(fail={"optimize": RuntimeError("down")}), _clock())
    (item, _) = skipped.as_json()["rows"][0]["pool_classes"]
    assert "rate_per_replica_rpm" not in item and item["arrival_rate_rpm"] == 40.0  # nothing decided
    unknown = replace(SYSTEM, service_classes=STATIC.service_classes)  # Bronze unknown: no bound
    row = run_cycle(1, "t", lambda: (unknown, CAPACITY), _clients(), _clock()).as_json()["rows"][0]
    assert row["pool_classes"][1]["latency_bound_s"] is None


def test_the_metrics_carry_each_pool_classs_rate_bound_plan_and_prediction() -> None:
    metrics = ControllerMetrics()
    ControlLoop(_clients(), _static, metrics).invoke()
    series = samples(metrics)

    def cls(name: str, value: str) -> float:
        return series[name][tuple(sorted({**LABELS, "class": value}.items()))]

    assert cls("inferno_server_class_arrival_rate_requests_per_second", "Premium") == pytest.approx(40 / 60)
    assert cls("inferno_server_class_arrival_rate_requests_per_second", "Bronze") == pytest.approx(20 / 60)
    assert cls("inferno_server_class_latency_bound_seconds", "Premium") == pytest.approx(82.84)
    assert cls("inferno_server_class_rate_per_replica_requests_per_second", "Bronze") == pytest.approx(10 / 60)
    assert cls("inferno_server_class_predicted_latency_seconds", "Premium") == 41.5
    plain = ControllerMetrics()
    ControlLoop(FakeClients(), lambda: (STATIC, CAPACITY), plain).invoke()
    assert "inferno_server_class_arrival_rate_requests_per_second" not in samples(plain)  # no pool, no series


def test_the_cycle_table_shows_a_line_per_pool_class_marking_a_missed_bound() -> None:
    record = run_cycle(1, "t", _static, _clients(), _clock()).as_json()
    text = cycle_text(record)
    assert "pool Premium-llama_13b class Premium (priority 0): 40.0 rpm, 20.0 rpm/replica, latency 41.50/82.84 s" \
        in text
    late = {"server": "p", "pool_classes": [{"class": "A", "priority": 0, "arrival_rate_rpm": 5.0,
                                             "latency_bound_s": 10.0, "rate_per_replica_rpm": 5.0,
                                             "predicted_latency_s": 12.0}]}
    assert pool_lines(late) == ["  pool p class A (priority 0): 5.0 rpm, 5.0 rpm/replica, latency 12.00/10.00 s !"]
    assert pool_lines({"server": "x"}) == []
