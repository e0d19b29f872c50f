"""The demo's percentile output: the client-side table shows P90s against the P90 targets, and the checks on a
cycle row's P90s pass only when the row states P90 targets and its figures are known and within them."""

from __future__ import annotations

from demo.report import phases_text
from demo.run import _p90, _p90_within


def _report(ttft_p90: float, itl_p90: float) -> dict:
    return {"offered_rps": 4.5, "achieved_rps": 4.4, "completed": 120, "failed": 0, "within_slo": 0.9,
            "ttft_ms": {"mean": 60.0, "p50": 50.0, "p90": ttft_p90, "p99": 900.0},
            "itl_ms": {"mean": 18.0, "p50": 18.0, "p90": itl_p90, "p99": 30.0}, "errors": {}}


def test_the_phase_table_shows_client_p90s_against_the_p90_targets_and_marks_a_miss() -> None:
    phases = [("after scale-up", {"llm/premium": _report(86.0, 19.0), "llm/bronze": _report(1037.0, 18.0)}),
              ("stepped", {"llm/premium": _report(13526.0, 19.0)})]
    text = phases_text(phases, {"llm/premium": (80.0, 1000.0), "llm/bronze": (80.0, 2000.0)},
                       {"llm/premium": (80.0, 1000.0), "llm/bronze": (0.0, 0.0)})
    lines = text.splitlines()
    assert "TTFT p90[/P90 SLO]" in lines[0] and "ITL p90[/P90 SLO]" in lines[0]
    premium, bronze, stepped = lines[2:5]
    assert "86/1,000 " in premium and "19/80 " in premium
    assert "1,037 " in bronze and "1,037/" not in bronze  # no P90 target: the figure alone
    assert "13,526/1,000 !" in stepped


def test_p90_checks_need_stated_targets_and_known_figures_within_them() -> None:
    row = {"slo_ttft_ms_p90": 1000.0, "slo_itl_ms_p90": 80.0, "predicted_ttft_ms_p90": 899.0,
           "predicted_itl_ms_p90": 18.0, "observed_ttft_ms_p90": 1200.0}
    assert _p90_within(row, "predicted")
    assert not _p90_within(row, "observed")  # TTFT over its target, ITL not observed
    assert not _p90_within({**row, "observed_ttft_ms_p90": 95.0}, "observed")  # ITL still unknown
    assert _p90_within({**row, "observed_ttft_ms_p90": 95.0, "observed_itl_ms_p90": 24.0}, "observed")
    assert not _p90_within({"predicted_ttft_ms_p90": 10.0}, "predicted")  # no P90 target stated
    assert _p90(row, "predicted") == "TTFT 899/1,000 ms, ITL 18/80 ms"
