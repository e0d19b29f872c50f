"""Pure aggregation: labels and per-pod rates -> servers, with fallbacks and warnings (tables)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from services.collector import aggregate as agg
from services.core import labels as lb
from services.core import model as m

STATIC = m.SystemData(
    accelerators=(m.Accelerator("A100", "A100", cost_per_hour=40.0),),
    models=(m.ModelPerf("llama", "A100", 2, 64, 512, m.PerfParms(10, 0.1, 0.01)),),
    service_classes=(m.ServiceClass("Premium", 1), m.ServiceClass("Free", 100)),
)
BASE = {lb.MANAGED: "true", lb.NAME: "premium-llama", lb.MODEL: "llama", lb.CLASS: "Premium",
        lb.ACCELERATOR: "A100", lb.MAX_BATCH: "32"}
LABELLED = {**BASE, lb.LOAD_RPM: "120", lb.LOAD_IN_TOKENS: "200", lb.LOAD_OUT_TOKENS: "100"}


def facts(labels, name="llama", pods=("p1", "p2"), spec=2, ready=2):
    return agg.DeploymentFacts(m.KubeRef("ns", name, "uid-" + name), labels, spec, ready,
                               tuple(agg.PodFacts(p, "127.0.0.1", True, 8000) for p in pods))


def busy_pod(requests_per_s=1.0, in_tokens=200.0, out_tokens=100.0, itl_s=0.02, ttft_s=0.1):
    return agg.PodRates(requests_per_s=requests_per_s, prompt_tokens_per_s=requests_per_s * in_tokens,
                        generation_tokens_per_s=requests_per_s * out_tokens,
                        itl_sum_per_s=requests_per_s * out_tokens * itl_s, itl_count_per_s=requests_per_s * out_tokens,
                        ttft_sum_per_s=requests_per_s * ttft_s, ttft_count_per_s=requests_per_s,
                        requests_running=3, requests_waiting=1, kv_cache_usage=0.5)


def collect_managed(labels, pods=None, **kw):
    return agg.collect_one(facts(labels, **kw), pods, m.LoadSource.PROMETHEUS, STATIC)


def collect_one(labels, pods=None, **kw):
    managed, warnings = collect_managed(labels, pods, **kw)
    return (managed.server if managed else None), warnings


@pytest.mark.parametrize(("source", "pods", "measured"), [
    pytest.param(m.LoadSource.PROMETHEUS, None, False, id="label_load_without_live_figures_is_not_measured"),
    pytest.param(m.LoadSource.PROMETHEUS, {"p1": busy_pod()}, True, id="prometheus_load_is_measured"),
    pytest.param(m.LoadSource.DIRECT_SCRAPE, {"p1": busy_pod()}, True, id="scraped_load_is_measured"),
    pytest.param(m.LoadSource.PROMETHEUS, {"p1": agg.PodRates(requests_per_s=0.0, requests_running=0.0,
                                                             requests_waiting=0.0)}, True,
                 id="idle_server_whose_metrics_were_read_is_measured"),
])
def test_load_measured_is_decided_once_with_the_deployment(source, pods, measured):
    managed, _ = agg.collect_one(facts(LABELLED), pods, source, STATIC)
    assert managed.load_measured is measured
    assert (managed.ref.name, managed.spec_replicas, managed.ready_replicas) == ("llama", 2, 2)


def test_two_busy_pods_sum_to_the_servers_load_and_mean_latency():
    server, warnings = collect_one(BASE, {"p1": busy_pod(1.0, itl_s=0.02), "p2": busy_pod(3.0, itl_s=0.04)})
    assert warnings == []
    assert server.load == m.Load(240.0, 200.0, 100.0)
    assert server.observed.itl_ms == pytest.approx((1 * 20 + 3 * 40) / 4)
    assert server.observed.ttft_ms == pytest.approx(100.0)
    assert (server.observed.requests_running, server.observed.requests_waiting) == (6, 2)
    assert server.observed.kv_cache_usage == 0.5
    assert server.observed.source == "prometheus" and server.observed.ready_replicas == 2
    assert server.current == m.Allocation("A100", 2, 32, 2 * 2 * 40.0, server.observed.itl_ms,
                                          server.observed.ttft_ms, server.load)
    assert (server.name, server.service_class, server.model) == ("premium-llama", "Premium", "llama")


@pytest.mark.parametrize("pods", [
    pytest.param(None, id="no_data_at_all"),
    pytest.param({}, id="no_pod_reported"),
    pytest.param({"p1": agg.PodRates(requests_per_s=0.0, prompt_tokens_per_s=0.0)}, id="idle_window"),
    pytest.param({"p1": agg.PodRates(requests_per_s=math.nan)}, id="nan_rate"),
    pytest.param({"p1": agg.PodRates(requests_per_s=math.inf)}, id="infinite_rate"),
    pytest.param({"other-pod": busy_pod()}, id="pod_of_another_deployment"),
])
def test_no_usable_data_falls_back_to_the_load_labels_and_says_so(pods):
    server, warnings = collect_one(LABELLED, pods)
    assert server.load == m.Load(120.0, 200.0, 100.0)
    assert server.observed.source == "labels"
    assert any("from load labels" in w and "Deployment ns/llama" in w for w in warnings)


def test_an_idle_window_is_told_apart_from_missing_metrics():
    idle, idle_notes = collect_one(LABELLED, {"p1": agg.PodRates(requests_per_s=0.0, requests_running=0.0,
                                                                 requests_waiting=0.0)})
    absent, absent_notes = collect_one(LABELLED, None)
    assert idle.observed.source == absent.observed.source == "labels"
    assert (idle.observed.requests_running, absent.observed.requests_running) == (0.0, None)
    assert any("no request completed in the window" in w for w in idle_notes)
    assert any("no prometheus data in the window" in w for w in absent_notes)


@pytest.mark.parametrize("labels, missing", [
    pytest.param(BASE, "arrival rate", id="no_load_labels"),
    pytest.param({**BASE, lb.LOAD_RPM: "120"}, "output tokens", id="no_token_label"),
    pytest.param({**BASE, lb.LOAD_RPM: "lots", lb.LOAD_OUT_TOKENS: "9"}, "arrival rate", id="garbage_rpm"),
])
def test_unknown_load_is_never_reported_as_zero(labels, missing):
    server, warnings = collect_one(labels, None)
    assert server is None
    assert any("skipped" in w and missing in w for w in warnings)


def test_measured_rate_with_missing_token_counters_takes_tokens_from_labels():
    pods = {"p1": agg.PodRates(requests_per_s=2.0)}
    server, warnings = collect_one(LABELLED, pods)
    assert server.load == m.Load(120.0, 200.0, 100.0)
    assert server.observed.source == "prometheus"
    assert any("output tokens, input tokens from load labels" in w for w in warnings)


def test_missing_input_tokens_count_as_zero_with_a_warning():
    server, warnings = collect_one({**BASE, lb.LOAD_RPM: "60", lb.LOAD_OUT_TOKENS: "50"}, None)
    assert server.load == m.Load(60.0, 0.0, 50.0)
    assert any("input tokens unknown" in w for w in warnings)


def test_seed_era_numtokens_label_is_the_output_tokens():
    server, _ = collect_one({**BASE, lb.LOAD_RPM: "60", lb.LOAD_NUM_TOKENS: "70"}, None)
    assert server.load.avg_out_tokens == 70.0


@pytest.mark.parametrize("changes, label, expected", [
    pytest.param({lb.LOAD_RPM: "abc"}, lb.LOAD_RPM, "not a non-negative number", id="non_numeric_rpm"),
    pytest.param({lb.LOAD_RPM: "-5"}, lb.LOAD_RPM, "not a non-negative number", id="negative_rpm"),
    pytest.param({lb.CLASS: "Gold"}, lb.CLASS, "service class the data does not know", id="unknown_class"),
    pytest.param({lb.MODEL: "gpt"}, lb.MODEL, "model the data does not know", id="unknown_model"),
    pytest.param({lb.ACCELERATOR: "TPU"}, lb.ACCELERATOR, "accelerator the data does not know", id="unknown_acc"),
    pytest.param({lb.MAX_BATCH: "3.5"}, lb.MAX_BATCH, "not a whole number", id="fractional_batch"),
    pytest.param({lb.KEEP_ACCELERATOR: "maybe"}, lb.KEEP_ACCELERATOR, "not true or false", id="bad_flag"),
    pytest.param({lb.MIN_REPLICAS: "two"}, lb.MIN_REPLICAS, "not a non-negative number", id="bad_min"),
])
def test_malformed_label_is_a_warning_naming_deployment_and_label_and_the_server_is_kept(changes, label, expected):
    server, warnings = collect_one({**LABELLED, **changes}, {"p1": busy_pod()})
    assert server is not None
    assert any(w.startswith("Deployment ns/llama: label " + label) and expected in w for w in warnings), warnings


@pytest.mark.parametrize("drop", [lb.NAME, lb.MODEL])
def test_deployment_without_name_or_model_label_is_skipped_with_a_warning(drop):
    labels = {k: v for k, v in LABELLED.items() if k != drop}
    server, warnings = collect_one(labels, {"p1": busy_pod()})
    assert server is None
    assert warnings == [f"Deployment ns/llama: skipped: label {drop} is missing or empty"]


def test_labels_parse_options_and_default_class():
    labels = {lb.NAME: "s", lb.MODEL: "llama", lb.KEEP_ACCELERATOR: "true", lb.MIN_REPLICAS: "2",
              lb.MAX_QUEUE: "100"}
    parsed, warnings = lb.parse_labels(labels, "Deployment ns/d", STATIC)
    assert warnings == []
    assert parsed == lb.ServerLabels("s", "llama", "Free", "", 0, 100, True, 2, lb.LabelLoad())


def test_unreadable_static_data_skips_the_known_name_checks():
    parsed, warnings = lb.parse_labels({**BASE, lb.CLASS: "Gold"}, "Deployment ns/d", None)
    assert parsed.service_class == "Gold" and warnings == []


def test_collect_sorts_servers_and_keeps_source_warnings():
    first = facts(LABELLED, name="a")
    other = facts({**LABELLED, lb.NAME: "free-llama", lb.CLASS: "Free"}, name="c", pods=("p9",))
    rates = {("ns", "c"): {"p9": busy_pod(0.5)}}
    result = agg.collect([other, first], rates, m.LoadSource.PROMETHEUS, STATIC, ["source said"])
    assert [s.name for s in result.servers] == ["free-llama", "premium-llama"]
    assert [(r.name, r.ref.name, r.spec_replicas) for r in result.managed] == [
        ("free-llama", "c", 2), ("premium-llama", "a", 2)]
    assert result.warnings[0] == "source said"
    assert dict(result.sources) == {"prometheus": 1, "labels": 1}


def test_a_server_name_on_two_deployments_is_an_error_on_both_and_the_others_are_decided():
    """Issue 15: a second Deployment repeating another's inferno.server.name no longer takes it over."""
    first, dup = facts(LABELLED, name="a"), facts(LABELLED, name="b")
    other = facts({**LABELLED, lb.NAME: "free-llama", lb.CLASS: "Free"}, name="c", pods=("p9",))
    rates = {("ns", "c"): {"p9": busy_pod(0.5)}}
    result = agg.collect([other, dup, first], rates, m.LoadSource.PROMETHEUS, STATIC)
    assert [(r.name, r.ref.name) for r in result.managed] == [("free-llama", "c")]
    for name in ("a", "b"):
        assert any(w.startswith(f"Deployment ns/{name}: skipped: server name 'premium-llama' is carried by 2 "
                                "Deployments (ns/a, ns/b); none is managed") for w in result.warnings)


def test_measure_ignores_missing_and_negative_figures():
    measured = agg.measure([agg.PodRates(requests_per_s=1.0, generation_tokens_per_s=-3.0),
                            agg.PodRates(requests_per_s=None)])
    assert measured.arrival_rate_rpm == 60.0
    assert measured.avg_out_tokens is None and measured.itl_ms is None


def _with_token_histograms(pod, completed_per_s, in_tokens, out_tokens):
    return replace(pod, request_prompt_tokens_sum_per_s=completed_per_s * in_tokens,
                   request_prompt_tokens_count_per_s=completed_per_s,
                   request_generation_tokens_sum_per_s=completed_per_s * out_tokens,
                   request_generation_tokens_count_per_s=completed_per_s)


def test_token_averages_come_from_the_per_request_histograms_when_every_pod_has_them():
    # the counters say 200/100 tokens per request (skewed by requests in flight at the window's ends);
    # the histograms, observed at completion, say 128/64
    pods = [_with_token_histograms(busy_pod(), 1.0, 128, 64), _with_token_histograms(busy_pod(), 0.5, 128, 64)]
    measured = agg.measure(pods)
    assert (measured.avg_in_tokens, measured.avg_out_tokens) == (pytest.approx(128), pytest.approx(64))


def test_token_averages_fall_back_to_the_counters_when_a_pod_lacks_the_histograms():
    pods = [_with_token_histograms(busy_pod(), 1.0, 128, 64), busy_pod()]
    measured = agg.measure(pods)
    assert measured.avg_in_tokens == pytest.approx((200 + 200) / 2)
    assert measured.avg_out_tokens == pytest.approx(100)
