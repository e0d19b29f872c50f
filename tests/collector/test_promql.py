"""PromQL builders and result parsing: both spellings, old and new names, escaping, garbage values."""

from __future__ import annotations

import pytest

from services.collector import promql


def test_counter_query_matches_both_spellings_per_pod_over_the_window():
    query = promql.counter_query(("request_success_total",), ["llm"], "20s")
    assert query == ('sum by (namespace, pod) (rate({__name__=~"vllm[:_]request_success_total", '
                     'namespace=~"llm"}[20s]))')


def test_renamed_metric_prefers_the_new_name_per_pod():
    query = promql.queries(["a"], "1m")["itl_sum_per_s"]
    new, old = query.split(" or ")
    assert "inter_token_latency_seconds_sum" in new and "time_per_output_token_seconds_sum" in old
    assert "kv_cache_usage_perc" in promql.queries([], "1m")["kv_cache_usage"].split(" or ")[0]


def test_no_namespaces_means_no_namespace_matcher():
    assert "namespace=~" not in promql.counter_query(("x",), [], "1m")


@pytest.mark.parametrize("value, literal", [
    pytest.param("plain", '"plain"', id="plain"),
    pytest.param('a"b', '"a\\"b"', id="quote"),
    pytest.param("a\\b", '"a\\\\b"', id="backslash"),
    pytest.param("a\nb", '"a\\nb"', id="newline"),
])
def test_label_values_are_escaped(value, literal):
    assert promql.quote(value) == literal


def test_regex_alternatives_escape_metacharacters_and_sort():
    assert promql.regex_alternatives(["b.c", "a-b", "b.c"]) == '"a\\\\-b|b\\\\.c"'


@pytest.mark.parametrize("window, seconds", [("20s", 20), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5)])
def test_window_seconds(window, seconds):
    assert promql.window_seconds(window) == seconds


@pytest.mark.parametrize("window", ["", "1", "1 m", "m1", "1m x"])
def test_bad_window_raises(window):
    with pytest.raises(ValueError):
        promql.window_seconds(window)


def test_parse_vector_keeps_finite_values_per_namespace_and_pod():
    result = [
        {"metric": {"namespace": "n", "pod": "p1"}, "value": [1.0, "2.5"]},
        {"metric": {"namespace": "n", "pod": "p2"}, "value": [1.0, "NaN"]},
        {"metric": {"namespace": "n", "pod": "p3"}, "value": [1.0, "+Inf"]},
        {"metric": {"pod": "p4"}, "value": [1.0, "1"]},
    ]
    assert promql.parse_vector(result) == {("n", "p1"): 2.5}


@pytest.mark.parametrize("result", [
    pytest.param({"resultType": "matrix"}, id="not_a_list"),
    pytest.param([{"metric": {}}], id="no_value"),
    pytest.param([{"metric": {"namespace": "n", "pod": "p"}, "value": [1, "abc"]}], id="garbage_value"),
])
def test_parse_vector_rejects_malformed_results(result):
    with pytest.raises(ValueError):
        promql.parse_vector(result)
