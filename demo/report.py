"""Readable text tables of what the demo observed, decided and did: one per control cycle (from the /invoke
answer) and one of the client-side latency by phase (from the load generator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _num(value: Any, digits: int = 0) -> str:
    if value is None or value == "":
        return "-"
    return f"{float(value):,.{digits}f}"


def _vs(observed: Any, slo: Any) -> str:
    """'observed/slo' with a mark when the observation misses the SLO."""
    if observed is None:
        return "-/" + _num(slo)
    miss = slo not in (None, 0) and float(observed) > float(slo)
    return f"{_num(observed)}/{_num(slo)}{' !' if miss else ''}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table with a rule under the header."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
             for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cycle_text(status: int, record: Mapping[str, Any]) -> str:
    """One /invoke answer: outcome, phase timings and the per-server table (observed | decided | done).

    Latencies are ms, shown as value/SLO with '!' where the value misses the SLO; 'observed' comes from the
    collector (Prometheus or direct scrape), 'predicted' from the optimizer's queueing model."""
    timings = record.get("timings_ms") or {}
    head = (f"cycle {record.get('cycle_id', '?')}: {record.get('outcome', 'failed')} (HTTP {status})"
            + (f" - {record['skip_reason']}" if record.get("skip_reason") else "")
            + "  [" + ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()) + "]")
    if record.get("total_cost_per_hour"):
        head += f"  cost {record['total_cost_per_hour']:,.2f}/h"
    rows = []
    for row in record.get("rows") or []:
        replicas = f"{_num(row.get('current_replicas'))} -> {_num(row.get('replicas'))}" if "replicas" in row \
            else _num(row.get("current_replicas"))
        action = row.get("action", row.get("unallocated_reason", "-"))
        rows.append([row["server"], _num(row.get("arrival_rate_rpm"), 1), row.get("load_source") or "-",
                     _vs(row.get("observed_itl_ms"), row.get("slo_itl_ms")),
                     _vs(row.get("observed_ttft_ms"), row.get("slo_ttft_ms")),
                     row.get("accelerator", row.get("current_accelerator", "-")), _num(row.get("max_batch")),
                     replicas, _vs(row.get("predicted_itl_ms"), row.get("slo_itl_ms")),
                     _vs(row.get("predicted_ttft_ms"), row.get("slo_ttft_ms")), action])
    header = ["server", "load rpm", "source", "obs ITL/SLO", "obs TTFT/SLO", "acc", "batch", "replicas",
              "pred ITL/SLO", "pred TTFT/SLO", "action"]
    warnings = "".join(f"\n  warning: {w}" for w in record.get("warnings") or [])
    return head + "\n" + table(header, rows) + warnings


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
