"""A pool Deployment in the collector (docs/contract.md s10): its classes from inferno.server.classes, each class's
rate from the pool router's counters, else the label split, else an even split with a warning."""

from __future__ import annotations

import pytest

from services.collector import aggregate as agg
from services.collector import promql
from services.core import model as m
from services.core import routing
from tests.collector.test_aggregate import LABELLED, STATIC, busy_pod, facts

POOL = {**LABELLED, routing.POOL_LABEL: "llama", routing.CLASSES_LABEL: "Premium.Free"}


def _collect(labels, routed=None):
    managed, warnings = agg.collect_one(facts(labels), {"p1": busy_pod(1.0), "p2": busy_pod(1.0)},
                                        m.LoadSource.PROMETHEUS, STATIC, routed=routed)
    return managed, warnings


def test_the_routers_per_class_rates_give_each_class_its_load_with_the_deployments_token_lengths():
    managed, warnings = _collect(POOL, {"Premium": 30.0, "Free": 90.0, "Other": 5.0})
    server = managed.server
    assert [(c.name, c.priority, c.load.arrival_rate_rpm) for c in server.pool_classes] == [
        ("Premium", 0, 30.0), ("Free", 1, 90.0)]
    assert all(c.load.avg_in_tokens == server.load.avg_in_tokens == 200 for c in server.pool_classes)
    assert all(c.load.avg_out_tokens == 100 for c in server.pool_classes)
    assert server.load.arrival_rate_rpm == 120  # the Deployment's own measured rate (2 pods x 1 req/s)
    assert not any("pool" in w for w in warnings)


@pytest.mark.parametrize(("extra", "rates", "warned"), [
    pytest.param({routing.SHARES_LABEL: "1-3"}, [30.0, 90.0], False, id="label_shares"),
    pytest.param({}, [60.0, 60.0], True, id="even_split"),
])
def test_without_router_counts_the_deployments_rate_is_split_by_label_or_evenly(extra, rates, warned):
    managed, warnings = _collect({**POOL, **extra}, routed={"Elsewhere": 7.0})
    assert [c.load.arrival_rate_rpm for c in managed.server.pool_classes] == rates
    assert any("pool classes split evenly" in w for w in warnings) is warned


@pytest.mark.parametrize("labels", [
    {**POOL, routing.CLASSES_LABEL: "Premium..Free"},
    {**POOL, routing.SHARES_LABEL: "1-2-3"},
    {key: v for key, v in POOL.items() if key != routing.CLASSES_LABEL},
])
def test_a_pool_whose_labels_cannot_be_read_is_skipped_with_a_warning_naming_them(labels):
    managed, warnings = _collect(labels)
    assert managed is None
    assert any("skipped: pool 'llama'" in w and "inferno.server." in w for w in warnings)


def test_an_ordinary_deployment_has_no_pool_classes():
    managed, _ = _collect(LABELLED, {"Premium": 30.0})
    assert managed.server.pool_classes == ()


def test_the_class_rate_query_and_its_answer():
    query = promql.class_rate_query(["llm"], "1m")
    assert query == ('sum by (namespace, deployment, objective) '
                     '(rate(inference_objective_request_total{namespace=~"llm"}[1m]))')
    answer = [{"metric": {"namespace": "llm", "deployment": "d", "objective": "Premium"}, "value": [0, "0.5"]},
              {"metric": {"namespace": "llm", "deployment": "d", "objective": "Free"}, "value": [0, "NaN"]},
              {"metric": {"namespace": "llm", "objective": "Free"}, "value": [0, "1"]}]
    assert promql.parse_class_rates(answer) == {("llm", "d"): {"Premium": 0.5}}
    with pytest.raises(ValueError):
        promql.parse_class_rates({"not": "a vector"})
