"""Direct scrape: two scrapes of each pod's /metrics, rates from the difference (fake fetch and clock)."""

from __future__ import annotations

import pytest
import requests

from services.collector.aggregate import DeploymentFacts, PodFacts
from services.collector.scrape_source import DirectScrapeSource, rates_between, sample_totals
from tests.collector.fakes import deployment


def exposition(requests_total, itl_sum, itl_count, colon=True, old_itl=False, kv=0.5):
    p = "vllm:" if colon else "vllm_"
    itl = "time_per_output_token_seconds" if old_itl else "inter_token_latency_seconds"
    cache = "gpu_cache_usage_perc" if old_itl else "kv_cache_usage_perc"
    return "\n".join([
        f"# TYPE {p}request_success counter",
        f'{p}request_success_total{{finished_reason="stop",model_name="m"}} {requests_total * 0.75}',
        f'{p}request_success_total{{finished_reason="length",model_name="m"}} {requests_total * 0.25}',
        f"# TYPE {p}prompt_tokens counter", f'{p}prompt_tokens_total{{model_name="m"}} {requests_total * 100}',
        f"# TYPE {p}generation_tokens counter", f'{p}generation_tokens_total{{model_name="m"}} {requests_total * 10}',
        f"# TYPE {p}{itl} histogram", f'{p}{itl}_bucket{{le="+Inf",model_name="m"}} {itl_count}',
        f'{p}{itl}_sum{{model_name="m"}} {itl_sum}', f'{p}{itl}_count{{model_name="m"}} {itl_count}',
        f"# TYPE {p}num_requests_running gauge", f'{p}num_requests_running{{model_name="m"}} 4',
        f"# TYPE {p}{cache} gauge", f'{p}{cache}{{model_name="m"}} {kv}',
        "# TYPE process_cpu_seconds counter", "process_cpu_seconds_total 12", ""])


@pytest.mark.parametrize("colon", [True, False], ids=["vllm_colon", "vllm_underscore"])
def test_sample_totals_sum_label_sets_and_accept_both_spellings(colon):
    totals = sample_totals(exposition(8, 1.0, 50, colon=colon))
    assert totals["request_success_total"] == 8.0
    assert totals["inter_token_latency_seconds_sum"] == 1.0
    assert "process_cpu_seconds_total" not in totals
    assert not any(name.endswith("_bucket") for name in totals)


@pytest.mark.parametrize("old", [False, True], ids=["new_names", "old_names"])
def test_rates_between_two_snapshots(old):
    first = (10.0, sample_totals(exposition(100, 2.0, 100, old_itl=old)))
    second = (20.0, sample_totals(exposition(130, 8.0, 400, old_itl=old, kv=0.7)))
    rates = rates_between(first, second)
    assert rates.requests_per_s == pytest.approx(3.0)
    assert rates.prompt_tokens_per_s == pytest.approx(300.0)
    assert rates.itl_sum_per_s == pytest.approx(0.6) and rates.itl_count_per_s == pytest.approx(30.0)
    assert rates.kv_cache_usage == 0.7 and rates.requests_running == 4.0
    assert rates.ttft_sum_per_s is None


def test_a_counter_that_went_down_gives_no_rate():
    rates = rates_between((0.0, {"request_success_total": 50.0}), (5.0, {"request_success_total": 3.0}))
    assert rates.requests_per_s is None


def test_direct_scrape_reads_each_pod_twice_and_reports_pods_it_cannot_reach():
    base = deployment()
    pods = (PodFacts("pod-a", "10.0.0.1", True, 8000), PodFacts("pod-b", "10.0.0.2", True, 8000),
            PodFacts("pod-c"))  # pod-c has no IP yet: not scraped
    facts = DeploymentFacts(base.ref, base.labels, 3, 2, pods)
    calls = []
    clock = iter([1.0, 1.0, 11.0, 11.0])

    def fetch(url, timeout_s):
        calls.append(url)
        if len(calls) <= 2:
            return exposition(100, 1.0, 100)
        if "10.0.0.2" in url:
            raise requests.ConnectionError("refused")
        return exposition(120, 3.0, 300)

    source = DirectScrapeSource(10.0, 1.0, fetch=fetch, sleep=lambda s: None, now=lambda: next(clock))
    rates, warnings = source.read([facts])
    assert set(rates[("llm", "vllm")]) == {"pod-a"}
    assert rates[("llm", "vllm")]["pod-a"].requests_per_s == pytest.approx(2.0)
    assert warnings == ["pod llm/pod-b: metrics could not be scraped (ConnectionError: refused)"]
    assert sorted(calls) == ["http://10.0.0.1:8000/metrics"] * 2 + ["http://10.0.0.2:8000/metrics"] * 2


def test_direct_scrape_with_no_scrapable_pod_reads_nothing():
    source = DirectScrapeSource(10.0, 1.0, fetch=lambda *a: pytest.fail("fetched"),
                                sleep=lambda s: pytest.fail("slept"))
    assert source.read([deployment(pods=())]) == ({}, [])


def test_generation_token_buckets_are_kept_per_bucket_and_turned_into_rates():
    def text(counts):
        lines = ["# TYPE vllm:request_generation_tokens histogram"]
        lines += [f'vllm:request_generation_tokens_bucket{{le="{le}",model_name="m"}} {n}' for le, n in counts]
        return "\n".join([*lines, 'vllm:request_generation_tokens_sum{model_name="m"} 1', ""])
    first = sample_totals(text([("50.0", 1), ("100.0", 3), ("+Inf", 4)]))
    second = sample_totals(text([("50.0", 3), ("100.0", 9), ("+Inf", 12)]))
    assert "request_generation_tokens_bucket|50.0" in second
    rates = rates_between((0.0, first), (2.0, second))
    assert rates.generation_tokens_buckets == ((50.0, 1.0), (100.0, 3.0), (float("inf"), 4.0))
