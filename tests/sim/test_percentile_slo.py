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


def test_collector_percentiles_compare_the_histogram_p90_with_the_requests_of_its_window() -> None:
    from sim.report import collector_percentiles

    loaded = _seed001()  # 60 s window
    # first tokens at 100..190 s: TTFT 100 ms x 9 then 1,000 ms (t=190); one more at 300 s outside both windows
    records = [RequestRecord(100.0 + 10 * i - (0.1 if i < 9 else 1.0), 10, 10, 0.1 if i < 9 else 1.0, 0.05)
               for i in range(10)] + [RequestRecord(299.0, 10, 10, 1.0, 0.05), RequestRecord(50.0, 10, 10)]
    run = RunResult("inferno", records, 1.0, 0, observed_percentiles=[
        (160.0, {"observed_ttft_ms_p90": 120.0}),  # window (100, 160]: 100 ms x 6 -> P90 100 ms
        (200.0, {"observed_ttft_ms_p90": 900.0}),  # window (140, 200]: 100 ms x 4 and 1,000 ms -> P90 1,000 ms
        (260.0, {"observed_ttft_ms_p90": None}),   # no figure: not counted
        (600.0, {"observed_ttft_ms_p90": 50.0})])  # no request in the window: not counted
    got = collector_percentiles(run, loaded)
    assert got["collector_ttft_p90_cycles"] == 2
    assert (got["collector_ttft_p90_to_requests_min"], got["collector_ttft_p90_to_requests_max"]) == \
        pytest.approx((0.9, 1.2))
    assert collector_percentiles(RunResult("hpa", records, 1.0, 0), loaded) == {}


def test_inferno_in_the_simulator_observes_and_predicts_p90s_and_the_evaluation_shows_both_readings() -> None:
    import yaml

    from sim import evaluate
    from sim.run import run_scenario

    with open(scenario.resolve("seed001-stairstep"), encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    doc["load"]["phases"] = [{"rate_rps": 0.5, "duration_s": 300}, {"rate_rps": 1.5, "duration_s": 600}]
    means = run_scenario(scenario.parse(doc, "seed001-short.yaml"), ["inferno", "oracle"], progress=None)
    doc["slo"]["percentile"] = 90
    p90 = run_scenario(scenario.parse(doc, "seed001-short-p90.yaml"), ["inferno", "oracle"], progress=None)
    inferno = next(r for r in p90.results if r.policy == "inferno")
    figures = [f for _, f in inferno.observed_percentiles if f["observed_ttft_ms_p90"] is not None]
    assert len(figures) >= 10
    for f in figures:  # the collector's P90s from the simulated replicas' histograms, the optimizer's beside them
        assert 0 < f["observed_itl_ms_p90"] < 1000 and 0 < f["observed_ttft_ms_p90"] < 60_000
        assert f["predicted_ttft_ms_p90"] is not None and f["predicted_ttft_ms_p90"] <= 600 * (1 + 1e-6)
    summary = next(s for s in p90.summaries if s["policy"] == "inferno")
    assert summary["collector_ttft_p90_cycles"] >= 10
    assert 0.5 < summary["collector_ttft_p90_to_requests_median"] < 2.0
    section = "\n".join(evaluate._section(p90, "evaluation/x.png", "seed001-stairstep, SLOs read as P90"))
    assert "## seed001-stairstep, SLOs read as P90" in section and "read as p90" in section
    assert "mean held" in section or "mean missed" in section
    assert "p90 held" in section or "p90 missed" in section
    assert "inferno's view of the P90 TTFT" in section
    line = evaluate.reading_comparison(means, p90)
    assert line.startswith("inferno sized for the means: ") and "sized for P90: " in line and "oracle" in line
