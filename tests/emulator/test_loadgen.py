"""The load generator: schedules, length distributions (fixed, exponential, uniform, from a file; seeded; on the
command line and in the cluster config), Poisson rate, round-robin endpoints, SLO share."""

from __future__ import annotations

import json
import random

import pytest

from emulator.__main__ import main
from emulator.cluster import Cluster
from emulator.loadgen import LoadGenerator, Sample, Target, report
from emulator.loadshape import Length, constant, length_arg, parse_length, parse_schedule
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


@pytest.mark.parametrize("text", ["# output lengths of a data set\n10\n\n20 # short\n30\n100\n", "[10, 20, 30, 100]"])
def test_lengths_drawn_from_a_file_have_its_mean_and_only_its_values(tmp_path, text):
    (tmp_path / "lengths.txt").write_text(text)
    length = parse_length({"dist": "file", "path": "lengths.txt"}, base_dir=str(tmp_path))
    assert (length.mean, length.values) == (40, (10, 20, 30, 100))
    rng = random.Random(9)
    values = [length.sample(rng) for _ in range(8000)]
    assert set(values) == {10, 20, 30, 100}
    assert sum(values) / len(values) == pytest.approx(40, rel=0.03)


def test_the_same_seed_draws_the_same_lengths():
    length = parse_length({"dist": "exponential", "mean": 200})
    first, again, other = (random.Random(seed) for seed in (5, 5, 6))
    draws = [length.sample(first) for _ in range(50)]
    assert draws == [length.sample(again) for _ in range(50)] != [length.sample(other) for _ in range(50)]


@pytest.mark.parametrize(("text", "dist", "mean", "bounds"), [
    pytest.param("64", "fixed", 64, (1, 64), id="fixed"),
    pytest.param("exponential:100", "exponential", 100, (1, 1 << 20), id="exponential"),
    pytest.param("exp:100:10:500", "exponential", 100, (10, 500), id="exponential-clipped"),
    pytest.param("uniform:16:128", "uniform", 72, (16, 128), id="uniform"),
])
def test_command_line_length_forms(text, dist, mean, bounds):
    length = length_arg(text)
    assert (length.dist, length.mean, (length.low, length.high)) == (dist, mean, bounds)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("lots", "is not a token length", id="word"),
    pytest.param("uniform:10", "is not a token length", id="uniform-one-bound"),
    pytest.param("uniform:30:10", "low <= high", id="uniform-reversed"),
    pytest.param("exponential:0", "mean >= 1", id="exponential-zero-mean"),
    pytest.param("normal:5", "is not a token length", id="unknown"),
])
def test_bad_command_line_lengths_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        length_arg(text)


def test_bad_length_files_name_the_file_and_line(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("12\ntwelve\n")
    with pytest.raises(ValueError, match=r"out.txt line 2: 'twelve' is not a number"):
        parse_length({"dist": "file", "path": str(path)})
    path.write_text("12\n0\n")
    with pytest.raises(ValueError, match=r"out.txt line 2: '0' must be a number >= 1"):
        parse_length({"dist": "file", "path": str(path)})
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="out.txt: no lengths in it"):
        parse_length({"dist": "file", "path": str(path)})
    with pytest.raises(OSError):
        parse_length({"dist": "file", "path": str(tmp_path / "missing.txt")})


def test_loadgen_command_sends_output_lengths_from_a_file(tmp_path, capsys):
    (tmp_path / "out.txt").write_text("2\n7\n")
    server = VllmServer(EngineParams(alpha_ms=1, beta_ms=0, gamma_ms=0), "m").start()
    try:
        status = main(["loadgen", "--url", server.url, "--rate", "40", "--duration", "1", "--seed", "4",
                       "--in", "uniform:10:20", "--out", f"file:{tmp_path / 'out.txt'}", "--json"])
    finally:
        server.stop()
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["failed"] == 0
    generation, prompt = server.metrics.request_generation, server.metrics.request_prompt
    # every request asked for 2 or 7 tokens (buckets 2 and 10 only) and both lengths were drawn
    assert generation.count == report["completed"] and generation.counts[1] > 0 and generation.counts[3] > 0
    assert generation.counts[1] + generation.counts[3] == generation.count
    assert 10 <= prompt.total / prompt.count <= 20


def test_cluster_loads_take_length_distributions_and_refuse_bad_ones(tmp_path):
    (tmp_path / "out.txt").write_text("[5, 15]")
    load = {"deployment": "m", "phases": [{"rate_rps": 1, "duration_s": 1}],
            "in_tokens": {"dist": "exponential", "mean": 300}, "out_tokens": {"dist": "file", "path": "out.txt"}}
    cluster = Cluster({"deployments": [], "loads": [load]}, prometheus=False, base_dir=str(tmp_path))
    try:
        target = cluster.targets[0]
        assert (target.in_tokens.dist, target.in_tokens.mean, target.out_tokens.values) == ("exponential", 300,
                                                                                              (5, 15))
    finally:
        cluster.stop()
    with pytest.raises(ValueError, match="loads entry for default/m: out_tokens: unknown length distribution"):
        Cluster({"deployments": [], "loads": [{**load, "out_tokens": {"dist": "normal"}}]})


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
