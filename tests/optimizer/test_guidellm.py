"""GuideLLM report readers (docs/model.md s11) on the shipped sweeps, and their errors on bad files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from services.optimizer.guidellm import GuideLLMError, read_points


@pytest.fixture(scope="module")
def sweeps(sample_data: str) -> Path:
    return Path(sample_data) / "vllm-sweeps"


def test_flattened_json_sweep(sweeps: Path) -> None:
    points = read_points(sweeps / "llama-3.1-8b-h100" / "sweep-i1024-o1024.json")
    assert [p.strategy for p in points] == ["synchronous", "throughput"] + ["constant"] * 8
    point = points[2]  # constant@0.87
    assert (point.rate_rps, point.ttft_ms, point.itl_ms) == pytest.approx((0.85626, 44.8759, 7.62401), rel=1e-4)
    assert (point.in_tokens, point.out_tokens, point.requests) == (pytest.approx(1028.16, rel=1e-5),
                                                                   pytest.approx(1049.14, rel=1e-5), 307)
    assert 0.05 < point.out_c2 < 0.12  # lengths uniform in [0.5, 1.5] x 1024: C2 about 1/12
    assert point.steady_rate and point.arrival_c2 == 0.0 and not points[1].steady_rate


def test_negative_means_written_by_guidellm_are_unknown_not_errors(sweeps: Path) -> None:
    points = read_points(sweeps / "llama-3.1-8b-h100" / "sweep-i64-o256.json")
    assert sum(math.isnan(p.ttft_ms) for p in points) == 5
    assert all(p.itl_ms > 0 for p in points)


def test_csv_export_rows_with_extra_status_columns_are_realigned(sweeps: Path) -> None:
    points = read_points(sweeps / "qwen2.5-14b-h100" / "sweep-i1024-o1024.csv")
    assert [p.strategy for p in points] == ["synchronous", "throughput"] + ["constant"] * 8
    sync, first = points[0], points[2]
    assert (sync.ttft_ms, sync.itl_ms, sync.rate_rps) == pytest.approx((54.0817, 11.3318, 0.09), rel=1e-4)
    # row 6 has 4 incomplete requests, so GuideLLM wrote extra blocks its header does not name
    assert (first.ttft_ms, first.itl_ms, first.rate_rps) == pytest.approx((70.9211, 12.3223, 0.48833), rel=1e-4)
    assert first.requests == 294 and first.concurrency == pytest.approx(6.1692, rel=1e-4)
    assert all(a.itl_ms < b.itl_ms for a, b in zip(points[2:-1], points[3:], strict=True))


def test_native_json_report(sweeps: Path) -> None:
    points = read_points(sweeps / "guidellm-native" / "benchmarks.json")
    assert len(points) == 10 and points[0].strategy == "synchronous"
    assert (points[0].rate_rps, points[0].ttft_ms, points[0].itl_ms) == pytest.approx((1.02337, 21.4222, 2.10584),
                                                                                      rel=1e-3)
    assert points[0].requests == 18


@pytest.mark.parametrize(("content", "message"), [
    ("hello\n", "not a GuideLLM CSV export"),
    ('{"x": 1}', "not a GuideLLM report"),
    ("[1, 2]", "record 0: expected an object"),
    ('[{"Name": "constant@1"}]', "column 'Successful Requests per second mean' is missing"),
    ('{"benchmarks": [{"metrics": {}, "args": {"strategy": {"type_": "constant"}}}]}',
     "metrics.requests_per_second.successful.mean is missing"),
    ("[", "invalid JSON at line 1"),
    ("[]", "holds no benchmark"),
])
def test_bad_file_error_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(GuideLLMError, match=message) as err:
        read_points(path)
    assert str(path) in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GuideLLMError, match="nope.json: cannot read"):
        read_points(tmp_path / "nope.json")


def test_a_bad_figure_in_a_steady_rate_record_is_an_error(tmp_path: Path, sweeps: Path) -> None:
    records = json.loads((sweeps / "llama-3.1-8b-h100" / "sweep-i1024-o1024.json").read_text())
    records[3]["Successful Requests per second mean"] = "fast"
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(records))
    with pytest.raises(GuideLLMError, match=r"record 3 \(constant@1.59\).*expected a number"):
        read_points(path)
