"""Whole runs on short scenarios: the same seed gives the same summary, every request is accounted for, the
policies act on what they observe (the production cycle scales up on a load step), outputs are written."""

from __future__ import annotations

import json

import pytest

from sim.run import run_scenario, write_outputs
from sim.scenario import parse

STEP = {
    "name": "short-step", "seed": 5,
    "server": {"name": "s", "model": "m", "accelerator": "L40S",
               "perf": {"alpha_ms": 20, "beta_ms": 0.05, "gamma_ms": 1e-4}, "max_num_seqs": 8,
               "kv_cache_tokens": 50000},
    "slo": {"ttft_ms": 500, "itl_ms": 100},
    "load": {"phases": [{"rate_rps": 2.0, "duration_s": 120}, {"rate_rps": 12.0, "duration_s": 300}],
             "prompt_tokens": 128, "output_tokens": {"dist": "exponential", "mean": 32, "max": 128}},
    "cluster": {"initial_replicas": 1, "max_replicas": 8, "startup_s": 30},
}


@pytest.fixture(scope="module")
def step_run():
    return run_scenario(parse(STEP, "short-step"), ("inferno", "hpa", "oracle"), progress=None)


def test_the_same_seed_gives_the_same_summary(step_run) -> None:
    again = run_scenario(parse(STEP, "short-step"), ("inferno", "hpa", "oracle"), progress=None)
    assert again.summaries == step_run.summaries


def test_another_seed_gives_other_arrivals(step_run) -> None:
    other = run_scenario(parse(STEP, "short-step"), ("oracle",), seed=6, progress=None)
    assert other.summaries[0]["requests"] != step_run.summaries[-1]["requests"]


def test_every_request_is_accounted_for_and_all_policies_saw_the_same_traffic(step_run) -> None:
    counts = {s["requests"] for s in step_run.summaries}
    assert len(counts) == 1
    for summary in step_run.summaries:
        assert summary["finished"] + summary["dropped"] + summary["unfinished"] == summary["requests"]
        assert 0.0 <= summary["slo_attainment"] <= 1.0


def test_the_production_cycle_scales_up_on_the_step(step_run) -> None:
    inferno = next(r for r in step_run.results if r.policy == "inferno")
    before = max(spec for t, spec, _ in inferno.timeline if t < 120)
    after = max(spec for t, spec, _ in inferno.timeline)
    assert before == 1 and after >= 2
    assert step_run.summaries[0]["scale_events"] >= 1
    # what inferno's collector measured (completions over 1 m) against what was offered in the same window
    assert 0.5 < step_run.summaries[0]["measured_to_offered_rate_median"] < 1.5
    assert "measured_to_offered_rate_median" not in step_run.summaries[1]  # hpa measures no arrival rate


def test_outputs_are_written(step_run, tmp_path) -> None:
    paths = write_outputs(step_run, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    keys = {"policy", "requests", "slo_attainment", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p90_ms",
            "gpu_hours", "cost", "scale_events"}
    assert [s["policy"] for s in summary] == ["inferno", "hpa", "oracle"]
    assert all(keys <= set(s) for s in summary)
    with open(paths["figure"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| inferno |" in (tmp_path / "table.md").read_text()


def test_evaluate_writes_the_document_with_tables_figures_and_verdicts(tmp_path) -> None:
    import yaml

    from sim.evaluate import evaluate

    path = tmp_path / "short-step.yaml"
    path.write_text(yaml.safe_dump(STEP))
    written = evaluate([str(path)], str(tmp_path / "docs"), ("inferno", "static", "oracle"), with_checks=False)
    text = open(written).read()
    assert "## short-step" in text and "| inferno |" in text and "Verdict: inferno " in text
    assert "![short-step](evaluation/short-step.png)" in text
    assert (tmp_path / "docs" / "evaluation" / "short-step.png").stat().st_size > 1000


def test_verdict_compares_inferno_with_the_targets_and_the_others() -> None:
    from sim.evaluate import verdict

    rows = [{"policy": "inferno", "slo_attainment": 0.995, "gpu_hours": 10.5},
            {"policy": "hpa", "slo_attainment": 0.9, "gpu_hours": 12.0},
            {"policy": "static", "slo_attainment": 1.0, "gpu_hours": 20.0},
            {"policy": "oracle", "slo_attainment": 0.999, "gpu_hours": 10.0}]
    text = verdict(rows)
    assert "99.50% attainment (meets >= 99%)" in text and "1.05 x oracle GPU-hours (meets <= 1.1)" in text
    assert "vs hpa: ahead" in text and "vs static: lower or equal attainment at no more GPU-hours" in text


@pytest.mark.parametrize(("hits", "counts", "changes", "expected"), [
    pytest.param([10, 10, 10, 10], [10] * 4, [60.0], [0.0], id="never-breaks"),
    pytest.param([10, 5, 2, 10, 10], [10] * 5, [60.0], [120.0], id="breaks-then-holds"),
    pytest.param([10, 10, 5, 10, 9, 10], [10] * 6, [30.0, 240.0], [150.0, 60.0], id="each-change-on-its-own"),
    pytest.param([10, 5, 5], [10] * 3, [60.0], [120.0], id="never-recovers-censored-at-the-end"),
    pytest.param([100, 50, 100, 100, 99, 100], [100] * 6, [60.0], [60.0], id="one-late-noisy-minute-is-tolerated"),
    pytest.param([10, 0, 5, 10], [10, 0, 10, 10], [60.0], [120.0], id="minutes-without-requests-count-nothing"),
])
def test_recovery_time_runs_until_the_slo_holds_again(hits, counts, changes, expected) -> None:
    from sim.report import recovery_s

    assert recovery_s(hits, counts, changes) == expected
