"""SLOs read as percentiles in the simulator: the scenario key, what inferno sizes for, the verdicts from the
per-request samples for the mean and percentile readings alike."""

from __future__ import annotations

import dataclasses

import pytest

from sim import scenario
from sim.report import slo_verdicts
from sim.scenario import ScenarioError
from sim.simulate import RequestRecord, RunResult
from sim.system import static_data
from tests.sim.test_scenario import BASE


def _seed001(percentile: int = 0) -> scenario.Scenario:
    loaded = scenario.load("seed001-stairstep")
    return dataclasses.replace(loaded, slo=dataclasses.replace(loaded.slo, percentile=percentile))


def test_seed001_read_as_p90_sizes_inferno_for_p90_targets() -> None:
    mean, p90 = static_data(_seed001()), static_data(_seed001(90))
    (target,) = mean.service_classes[0].targets
    assert (target.slo_ttft_ms, target.slo_itl_ms, target.percentile_targets()) == (600, 100, ())
    (target,) = p90.service_classes[0].targets
    assert (target.slo_ttft_ms, target.slo_itl_ms) == (0, 0)
    assert target.percentile_targets() == (("itl", 90, 100), ("ttft", 90, 600))


def test_scenario_percentile_key_is_read_and_checked() -> None:
    assert scenario.load("seed001-stairstep").slo.reading == "mean"
    assert scenario.parse({**BASE, "slo": {**BASE["slo"], "percentile": 90}}, "x.yaml").slo.reading == "p90"
    with pytest.raises(ScenarioError, match=r"slo.percentile: must be 0 .* got 80"):
        scenario.parse({**BASE, "slo": {**BASE["slo"], "percentile": 80}}, "x.yaml")


def test_run_command_reads_the_slo_as_p90(tmp_path, capsys) -> None:
    from sim.__main__ import main
    assert main(["run", "seed001-stairstep", "--policies", "static", "--slo-percentile", "90",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "read as p90" in out and "in its reading (p90) held" in out


def _run(ttft_ms: list[float | None]) -> RunResult:
    records = [RequestRecord(i * 1.0, 10, 10, None if t is None else t / 1000, None if t is None else 0.05)
               for i, t in enumerate(ttft_ms)]
    return RunResult("inferno", records, 1.0, 0)


def test_verdicts_read_the_same_samples_as_means_and_as_percentiles() -> None:
    # 100 requests, SLO TTFT 600 ms: 92 fast ones and 8 at 2 s -> P90 holds (92% attainment), P95 does not;
    # the mean (0.92 x 100 + 0.08 x 2000 = 252 ms) holds
    ttft = [100.0] * 92 + [2000.0] * 8
    run, loaded = _run(ttft), _seed001(90)
    v = slo_verdicts(run, loaded, 0.92, ttft, [50.0] * 100)
    assert (v["slo_mean_held"], v["slo_p50_held"], v["slo_p90_held"], v["slo_p95_held"]) == (True, True, True, False)
    assert v["slo_reading"] == "p90" and v["slo_held"] is True
    # 85 fast and 15 at 700 ms: the mean (165 ms) holds, P90 is missed
    ttft = [100.0] * 85 + [700.0] * 15
    v = slo_verdicts(_run(ttft), _seed001(90), 0.85, ttft, [50.0] * 100)
    assert v["slo_mean_held"] and not v["slo_p90_held"] and v["slo_held"] is False
    assert slo_verdicts(_run(ttft), _seed001(), 0.85, ttft, [50.0] * 100)["slo_held"] is True  # read as means
    # a request never served fails the mean reading and counts against attainment
    v = slo_verdicts(_run([100.0] * 99 + [None]), _seed001(), 0.99, [100.0] * 99, [50.0] * 99)
    assert not v["slo_mean_held"] and v["slo_p99_held"]
