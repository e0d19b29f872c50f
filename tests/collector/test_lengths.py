"""Output-length C2 from vLLM's generation-token histogram (services/collector/lengths.py, docs/contract.md s4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.collector import aggregate, promql
from services.collector.aggregate import PodRates
from services.collector.lengths import bucket_counts, out_tokens_c2

VLLM_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, math.inf)
"""vLLM's 1-2-5 buckets of vllm:request_generation_tokens."""


def histogram(lengths: np.ndarray) -> list[tuple[float, float]]:
    return [(le, float(np.sum(lengths <= le))) for le in VLLM_BUCKETS]


@pytest.mark.parametrize(("name", "lengths", "low", "high"), [
    ("exponential", np.random.default_rng(1).exponential(1024, 20_000), 0.9, 1.1),
    ("exponential short", np.random.default_rng(2).exponential(200, 20_000), 0.9, 1.1),
    ("uniform 50-450 (C2 0.21)", np.random.default_rng(3).uniform(50, 450, 5_000), 0.15, 0.3),
    ("fixed", np.full(1_000, 1024.0), 0.0, 0.01),
])
def test_c2_is_recovered_from_the_coarse_buckets(name: str, lengths: np.ndarray, low: float, high: float) -> None:
    lengths = np.maximum(np.round(lengths), 1)
    assert low <= out_tokens_c2(histogram(lengths), float(lengths.mean())) <= high, name


def test_no_data_gives_no_estimate() -> None:
    assert out_tokens_c2([(10.0, 0.0), (math.inf, 0.0)], 5.0) is None
    assert out_tokens_c2([(10.0, 1.0), (math.inf, 1.0)], None) is None
    assert out_tokens_c2([(10.0, 1.0), (math.inf, 1.0)], 0.0) is None
    assert out_tokens_c2([(10.0, 1.0), (math.inf, 1.0)], 5.0) < 0.1  # one bucket: no spread to see


def test_bucket_counts_are_intervals_of_the_cumulative_counts() -> None:
    lows, highs, counts = bucket_counts([(math.inf, 5.0), (10.0, 3.0), (5.0, 1.0), (20.0, 3.0)])
    assert lows.tolist() == [0.0, 5.0, 20.0] and highs.tolist() == [5.0, 10.0, math.inf]
    assert counts.tolist() == [1.0, 2.0, 2.0]


def test_bucket_query_and_parser() -> None:
    query = promql.bucket_query(promql.GENERATION_TOKENS_BUCKETS, ["llm"], "1m")
    assert query == ('sum by (namespace, pod, le) (rate({__name__=~"vllm[:_]request_generation_tokens_bucket", '
                     'namespace=~"llm"}[1m]))')
    result = [{"metric": {"namespace": "llm", "pod": "a", "le": "+Inf"}, "value": [0, "2"]},
              {"metric": {"namespace": "llm", "pod": "a", "le": "100"}, "value": [0, "1.5"]},
              {"metric": {"namespace": "llm", "pod": "a"}, "value": [0, "1"]},
              {"metric": {"namespace": "llm", "pod": "b", "le": "100"}, "value": [0, "NaN"]}]
    assert promql.parse_buckets(result) == {("llm", "a"): ((100.0, 1.5), (math.inf, 2.0))}
    with pytest.raises(ValueError):
        promql.parse_buckets({"not": "a list"})


def test_deployment_c2_sums_the_pods_buckets_and_needs_every_pod() -> None:
    lengths = np.maximum(np.round(np.random.default_rng(4).exponential(300, 4_000)), 1)
    half = len(lengths) // 2

    def pod(part: np.ndarray) -> PodRates:
        return PodRates(requests_per_s=len(part) / 60, request_generation_tokens_sum_per_s=float(part.sum()) / 60,
                        request_generation_tokens_count_per_s=len(part) / 60,
                        generation_tokens_buckets=tuple((le, n / 60) for le, n in histogram(part)))

    pods = [pod(lengths[:half]), pod(lengths[half:])]
    c2 = aggregate.measure(pods).out_tokens_c2
    assert c2 == pytest.approx(out_tokens_c2(histogram(lengths), float(lengths.mean())), rel=1e-3)
    assert 0.85 < c2 < 1.15
    assert aggregate.measure([pods[0], PodRates(requests_per_s=1.0)]).out_tokens_c2 is None
