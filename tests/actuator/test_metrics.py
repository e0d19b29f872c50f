"""Actuator metrics read back over HTTP from /metrics."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.actuator import plan as p
from services.actuator.metrics import ActuatorMetrics
from services.core.model import ActuationOutcome, KubeRef


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from http://127.0.0.1:port/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(deployment: str, server: str, accelerator: str) -> tuple:
    return tuple(sorted({"namespace": "llm", "deployment": deployment, "server": server,
                         "accelerator": accelerator}.items()))


def change(name: str, outcome: ActuationOutcome, before: int, after: int, desired: int | None) -> p.Change:
    return p.Change(name, KubeRef("llm", name), outcome, "", before, after, desired, "A100")


@pytest.fixture
def metrics():
    metrics = ActuatorMetrics()
    server, port = metrics.serve("127.0.0.1", 0)
    yield metrics, port
    server.shutdown()


def test_desired_and_current_replicas_are_exported_per_deployment(metrics) -> None:
    exported, port = metrics
    exported.record([change("granite", ActuationOutcome.CHANGED, 2, 4, 4),
                     change("llama", ActuationOutcome.SKIPPED, 3, 3, 6),
                     change("gone", ActuationOutcome.SKIPPED, 0, 0, None)], dry_run=False)
    values = scrape(port)
    assert values[("inferno_desired_replicas", labels("granite", "granite", "A100"))] == 4
    assert values[("wva_desired_replicas", labels("granite", "granite", "A100"))] == 4
    assert values[("inferno_current_replicas", labels("granite", "granite", "A100"))] == 4
    assert values[("inferno_desired_ratio", labels("llama", "llama", "A100"))] == 2.0
    assert not any(key[0] == "inferno_desired_replicas" and ("deployment", "gone") in key[1] for key in values)
    assert values[("inferno_actuations_total", (("dry_run", "false"), ("outcome", "skipped")))] == 2


def test_dry_run_leaves_current_replicas_as_found(metrics) -> None:
    exported, port = metrics
    exported.record([change("granite", ActuationOutcome.CHANGED, 2, 4, 4)], dry_run=True)
    values = scrape(port)
    assert values[("inferno_current_replicas", labels("granite", "granite", "A100"))] == 2
    assert values[("inferno_actuations_total", (("dry_run", "true"), ("outcome", "changed")))] == 1


def test_each_call_replaces_the_previous_snapshot(metrics) -> None:
    exported, port = metrics
    exported.record([change("granite", ActuationOutcome.CHANGED, 2, 4, 4)], dry_run=False)
    exported.record([change("llama", ActuationOutcome.UNCHANGED, 1, 1, 1)], dry_run=False)
    names = {key for key in scrape(port) if key[0] == "inferno_desired_replicas"}
    assert names == {("inferno_desired_replicas", labels("llama", "llama", "A100"))}


def test_a_deployment_the_call_did_not_reach_keeps_its_previous_figures(metrics) -> None:
    registry, port = metrics
    registry.record([change("granite", ActuationOutcome.CHANGED, 2, 3, 3),
                     change("llama", ActuationOutcome.CHANGED, 1, 2, 2)], dry_run=False)
    unreached = p.Change("llama", KubeRef("llm", "llama"), ActuationOutcome.FAILED, p.NOT_ATTEMPTED)
    registry.record([change("granite", ActuationOutcome.UNCHANGED, 3, 3, 3), unreached], dry_run=False)
    samples = scrape(port)
    assert samples[("inferno_desired_replicas", labels("llama", "llama", "A100"))] == 2
    assert samples[("wva_desired_replicas", labels("llama", "llama", "A100"))] == 2
    assert samples[("inferno_desired_replicas", labels("granite", "granite", "A100"))] == 3
    assert samples[("inferno_actuations_total", (("dry_run", "false"), ("outcome", "failed")))] == 1


def test_zero_current_replicas_count_as_one_in_the_ratio(metrics) -> None:
    exported, port = metrics
    exported.record([change("granite", ActuationOutcome.UNCHANGED, 0, 0, 3)], dry_run=False)
    assert scrape(port)[("inferno_desired_ratio", labels("granite", "granite", "A100"))] == 3.0


def test_two_instances_do_not_share_a_registry() -> None:
    first, second = ActuatorMetrics(), ActuatorMetrics()
    first.record([change("granite", ActuationOutcome.CHANGED, 2, 4, 4)], dry_run=False)
    assert second.registry.get_sample_value("inferno_actuations_total",
                                            {"outcome": "changed", "dry_run": "false"}) == 0
