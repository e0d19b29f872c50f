"""The perfParms fit (docs/model.md s11): it recovers known parameters from data the model generated, and the
`fit` command reads GuideLLM files, prints the interface's JSON, evaluates given parameters and merges
model-data.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from services.core.model import PerfParms, ServiceModel
from services.optimizer.cli import main
from services.perfmodel.fit import FitOptions, Point, evaluate, fit, predict

TRUE = PerfParms(alpha_ms=6.6, beta_ms=0.02, gamma_ms=5e-5, ttft_overhead_ms=8.0)
SHAPES = [(1024, 1024, 6.0), (4096, 256, 6.0), (64, 256, 60.0), (256, 4096, 1.2)]
"""(L, K, about the capacity in req/s): rates are taken at 0 (synchronous) and 20..90% of it."""


def generated(perf: PerfParms, options: FitOptions) -> list[Point]:
    """Points whose 'measurements' are the model's own predictions at perf."""
    skeleton = [Point(capacity * f, L, K, 0.08, 0.0, math.nan, math.nan)
                for L, K, capacity in SHAPES for f in (0.0, 0.2, 0.5, 0.7, 0.9)]
    ttft, itl = predict(skeleton, perf, options)
    return [Point(p.rate_rps, p.in_tokens, p.out_tokens, p.out_c2, p.arrival_c2, float(t), float(i))
            for p, t, i in zip(skeleton, ttft, itl, strict=True)]


@pytest.mark.parametrize("model", [ServiceModel.V1, ServiceModel.V07, ServiceModel.V03])
def test_fit_recovers_the_parameters_that_generated_the_data(model: ServiceModel) -> None:
    options = FitOptions(model, max_batch=512)
    truth = TRUE if model == ServiceModel.V1 else PerfParms(TRUE.alpha_ms, TRUE.beta_ms, TRUE.gamma_ms)
    result = fit(generated(truth, options), options)
    got = result.perf
    assert (got.alpha_ms, got.beta_ms, got.gamma_ms, got.ttft_overhead_ms) == pytest.approx(
        (truth.alpha_ms, truth.beta_ms, truth.gamma_ms, truth.ttft_overhead_ms), rel=1e-3, abs=1e-6)
    assert result.ttft_error.ratio_of_means < 1e-4 and result.itl_error.ratio_of_means < 1e-4


def test_evaluating_other_parameters_reports_their_error() -> None:
    options = FitOptions()
    points = generated(TRUE, options)
    slower = evaluate(points, PerfParms(TRUE.alpha_ms * 1.1, TRUE.beta_ms, TRUE.gamma_ms, TRUE.ttft_overhead_ms),
                      options)
    assert 0.01 < slower.itl_error.ratio_of_means < 0.2 and slower.itl_error.median_ape > 0.01


@pytest.fixture
def sweep(sample_data: str) -> str:
    return str(Path(sample_data) / "vllm-sweeps" / "llama-3.1-8b-h100" / "sweep-i1024-o1024.json")


def test_fit_json_has_the_interface_keys(sweep: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", sweep, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"alpha", "beta", "gamma", "points", "error"} <= set(out)
    assert len(out["points"]) == 9  # synchronous + 8 constant rates; the throughput run is not a steady rate
    assert set(out["points"][0]) >= {"file", "rate_rps", "in_tokens", "out_tokens", "ttft_ms", "ttft_ms_pred",
                                     "itl_ms", "itl_ms_pred"}
    assert set(out["error"]) == {"ttft", "itl"}
    assert out["error"]["ttft"] < 0.15 and out["error"]["itl"] < 0.1
    assert 3 < out["alpha"] < 12 and 0 < out["beta"] < 0.1 and 0 <= out["gamma"] < 1e-3


def test_params_are_evaluated_not_fitted(sweep: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", sweep, "--params", "6.58,0.0193,0.0000546", "--service-model", "v0.7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["alpha"], out["beta"], out["gamma"], out["fitted"]) == (6.58, 0.0193, 0.0000546, False)
    point = out["points"][1]
    assert point["ttft_ms_pred"] > 0 and point["itl_ms_pred"] > 0
    mean_meas = sum(p["itl_ms"] for p in out["points"]) / 9
    mean_abs = sum(abs(p["itl_ms_pred"] - p["itl_ms"]) for p in out["points"]) / 9
    assert out["error"]["itl"] == pytest.approx(mean_abs / mean_meas, rel=1e-4)


def test_table_names_in_or_out_of_sample(sweep: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", sweep, "--params", "6.6,0.02,0.00005,8"]) == 0
    text = capsys.readouterr().out
    assert "out-of-sample" in text and "TTFT" in text and "constant" in text


def test_output_creates_then_merges_model_data(sweep: str, tmp_path: Path) -> None:
    path = tmp_path / "model-data.json"
    path.write_text(json.dumps({"models": [{"name": "other", "acc": "A100", "accCount": 2, "maxBatchSize": 64,
                                            "atTokens": 512, "perfParms": {"alpha": 1, "beta": 2, "gamma": 3}},
                                           {"name": "llama", "acc": "H100", "accCount": 1, "maxBatchSize": 256,
                                            "atTokens": 1024, "perfParms": {"alpha": 1, "beta": 1, "gamma": 1}}]}))
    assert main(["fit", sweep, "--params", "6.6,0.02,0.00005,8", "--output", str(path), "--model", "llama",
                 "--accelerator", "H100"]) == 0
    models = json.loads(path.read_text())["models"]
    assert models[0]["perfParms"] == {"alpha": 1, "beta": 2, "gamma": 3}
    assert models[1]["perfParms"] == {"alpha": 6.6, "beta": 0.02, "gamma": 0.00005, "ttftOverhead": 8.0}
    assert models[1]["maxBatchSize"] == 256  # the entry's other fields are kept
    assert main(["fit", sweep, "--params", "6.6,0.02,0.00005", "--output", str(path), "--model", "llama",
                 "--accelerator", "L40S"]) == 0
    added = json.loads(path.read_text())["models"][2]
    assert (added["name"], added["acc"], added["perfParms"]["alpha"]) == ("llama", "L40S", 6.6)
    fresh = tmp_path / "new.json"
    assert main(["fit", sweep, "--params", "6.6,0.02,0.00005", "--output", str(fresh), "--model", "m",
                 "--accelerator", "a"]) == 0
    assert [m["name"] for m in json.loads(fresh.read_text())["models"]] == ["m"]


@pytest.mark.parametrize("args", [["--params", "1,2"], ["--params", "1,-2,3"], ["--output", "x.json"],
                                  ["--max-batch", "0"]])
def test_bad_options_exit_1(sweep: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", sweep, *args]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_a_bad_file_exits_1_naming_it(sweep: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("not,a,guidellm,file\n")
    assert main(["fit", sweep, str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
