"""Readable text tables of what the demo observed, decided and did: one per control cycle (from the /invoke
answer; services/controller/report.py, shared with the history command) and one of the client-side latency by
phase (from the load generator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.controller.report import cycle_text, table
from services.controller.report import number as _num
from services.controller.report import versus as _vs

__all__ = ["cycle_text", "phases_text", "table"]


def phases_text(phases: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
                slos: Mapping[str, tuple[float, float]],
                p90_slos: Mapping[str, tuple[float, float]] | None = None) -> str:
    """Client-side latency per phase and server: offered/achieved req/s, mean and p90 TTFT, mean and p90 ITL
    (ms), share of requests within both mean SLOs. ``slos`` maps a load target to its mean (ITL, TTFT) SLOs in
    ms, ``p90_slos`` to its P90 (ITL, TTFT) targets (0 = none), shown as p90/target. The client's ITL p90 is
    the 90th percentile of the requests' mean token gaps (vLLM's histogram and the optimizer's P90 are over
    all gaps, which spread wider)."""
    rows = []
    for phase, reports in phases:
        for name, rep in reports.items():
            slo_itl, slo_ttft = slos.get(name, (None, None))
            p90_itl, p90_ttft = (p90_slos or {}).get(name, (0.0, 0.0))
            rows.append([phase, name, _num(rep["offered_rps"], 2), _num(rep["achieved_rps"], 2),
                         str(rep["completed"]), str(rep["failed"]), _vs(rep["ttft_ms"]["mean"], slo_ttft),
                         _vs(rep["ttft_ms"]["p90"], p90_ttft) if p90_ttft else _num(rep["ttft_ms"]["p90"]),
                         _vs(rep["itl_ms"]["mean"], slo_itl),
                         _vs(rep["itl_ms"]["p90"], p90_itl) if p90_itl else _num(rep["itl_ms"]["p90"]),
                         f"{rep['within_slo'] * 100:.0f}%"])
    header = ["phase", "server", "sent/s", "done/s", "done", "failed", "TTFT mean/SLO", "TTFT p90[/P90 SLO]",
              "ITL mean/SLO", "ITL p90[/P90 SLO]", "within SLO"]
    failures = [f"\n  failed in {phase}, {name}: " + ", ".join(f"{why} x{n}" for why, n in rep["errors"].items())
                for phase, reports in phases for name, rep in reports.items() if rep.get("errors")]
    return table(header, rows) + "".join(failures)
