"""The load generator: schedules, length distributions, Poisson rate, round-robin endpoints, SLO share."""

from __future__ import annotations

import random

import pytest

from emulator.loadgen import LoadGenerator, Sample, Target, report
from emulator.loadshape import Length, constant, parse_length, parse_schedule
from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams


@pytest.fixture
def loadgen_replicas():
    """Two fast replicas (1 ms iterations), stopped afterwards."""
    servers = [VllmServer(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0), "m").start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def test_stair_step_ramp_and_constant_phases():
    schedule = parse_schedule([{"rate_rps": 1, "duration_s": 10},
                               {"rate_rps": 0, "to_rps": 4, "duration_s": 4},
                               {"stairs": {"from_rps": 0.5, "to_rps": 2, "step_rps": 0.5, "every_s": 10}}])
    assert schedule.duration_s == 10 + 4 + 40
    assert [schedule.rate_at(t) for t in (5, 11, 13, 15, 25, 35, 45, 60)] == [1, 1, 3, 0.5, 1, 1.5, 2, 0]
    assert schedule.peak_rps == 4


@pytest.mark.parametrize(("spec", "mean", "bounds"), [
    pytest.param(32, 32, (32, 32), id="fixed"),
    pytest.param({"dist": "exponential", "mean": 50, "max": 400}, 50, (1, 400), id="exponential"),
    pytest.param({"dist": "uniform", "low": 10, "high": 30}, 20, (10, 30), id="uniform"),
])
def test_length_distributions(spec, mean, bounds):
    rng = random.Random(1)
    values = [parse_length(spec).sample(rng) for _ in range(4000)]
    assert bounds[0] <= min(values) and max(values) <= bounds[1]
    assert sum(values) / len(values) == pytest.approx(mean, rel=0.05)


def test_poisson_rate_is_achieved_and_requests_round_robin(loadgen_replicas):
    urls = [s.url for s in loadgen_replicas]
    target = Target("t", lambda: urls, constant(40, 3), Length("fixed", 8), Length("fixed", 3))
    result = LoadGenerator([target], seed=3).run()["t"]
    assert result["failed"] == 0
    assert result["sent"] == pytest.approx(120, rel=0.2)
    assert result["achieved_rps"] == pytest.approx(40, rel=0.2)
    served = [s.metrics.success for s in loadgen_replicas]
    assert abs(served[0] - served[1]) <= 1 and sum(served) == result["completed"]
    assert result["ttft_ms"]["p50"] < 50 and 0.5 < result["itl_ms"]["mean"] < 20


def test_bounded_by_max_requests_and_failures_counted():
    target = Target("t", ["http://127.0.0.1:9"], constant(200, 5), Length("fixed", 1), Length("fixed", 1))
    result = LoadGenerator([target], max_requests=5, drain_s=5).run()["t"]
    assert (result["sent"], result["completed"], result["failed"]) == (5, 0, 5)


def test_share_within_slo_counts_failures_as_misses():
    target = Target("t", [], constant(1, 1), slo_ttft_ms=100, slo_itl_ms=20)
    samples = [Sample(True, 0.05, 0.01, 1.0, 10), Sample(True, 0.2, 0.01, 1.0, 10),
               Sample(True, 0.05, 0.03, 1.0, 10), Sample(False)]
    result = report(target, samples, sent=4, elapsed_s=2.0)
    assert result["within_slo"] == 0.25
    assert (result["completed"], result["failed"], result["achieved_rps"]) == (3, 1, 1.5)
    assert result["ttft_ms"]["p50"] == pytest.approx(50)


def test_window_reports_count_only_requests_sent_in_the_window(loadgen_replicas):
    urls = [s.url for s in loadgen_replicas]
    schedule = parse_schedule([{"rate_rps": 30, "duration_s": 1}, {"rate_rps": 0, "duration_s": 1},
                               {"rate_rps": 30, "duration_s": 1}])
    generator = LoadGenerator([Target("t", urls, schedule, Length("fixed", 8), Length("fixed", 2))], seed=5)
    whole = generator.run()["t"]
    first, idle, last = (generator.window_reports(a, b)["t"] for a, b in ((0, 1), (1, 2), (2, 3)))
    assert idle["sent"] == 0 and idle["offered_rps"] == 0
    assert first["sent"] + last["sent"] == whole["sent"] and first["sent"] > 10 and last["sent"] > 10
    assert first["offered_rps"] == pytest.approx(first["sent"])
    assert last["failed"] == 0 and last["ttft_ms"]["p50"] < 50
