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
                slos: Mapping[str, tuple[float, float]]) -> str:
    """Client-side latency per phase and server: offered/achieved req/s, mean and p90 TTFT, mean ITL (ms),
    share of requests within both SLOs. ``slos`` maps a load target to (ITL, TTFT) SLOs in ms."""
    rows = []
    for phase, reports in phases:
        for name, rep in reports.items():
            slo_itl, slo_ttft = slos.get(name, (None, None))
            rows.append([phase, name, _num(rep["offered_rps"], 2), _num(rep["achieved_rps"], 2),
                         str(rep["completed"]), str(rep["failed"]), _vs(rep["ttft_ms"]["mean"], slo_ttft),
                         _num(rep["ttft_ms"]["p90"]), _vs(rep["itl_ms"]["mean"], slo_itl),
                         f"{rep['within_slo'] * 100:.0f}%"])
    header = ["phase", "server", "sent/s", "done/s", "done", "failed", "TTFT mean/SLO", "TTFT p90",
              "ITL mean/SLO", "within SLO"]
    failures = [f"\n  failed in {phase}, {name}: " + ", ".join(f"{why} x{n}" for why, n in rep["errors"].items())
                for phase, reports in phases for name, rep in reports.items() if rep.get("errors")]
    return table(header, rows) + "".join(failures)
