"""The load generator's reports for people: a text table (one row per target) or rounded JSON.

A report is loadgen.report()'s dict: counts, offered and achieved req/s, TTFT / ITL / end-to-end latency
statistics in ms (mean, p50, p90, p99), the share of requests within the SLOs and the top failure reasons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

HEADER = ("target", "sent", "done", "failed", "sent/s", "done/s", "TTFT mean", "p50", "p90", "p99", "ITL mean",
          "p90", "p99", "e2e mean", "p90", "within SLO")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned (numbers right-aligned), a rule under the header."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]
    numeric = [all(_is_number(r[i]) for r in rows) and rows for i in range(len(header))]
    lines = []
    for line in (header, *rows):
        cells = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%").replace(",", ""))
    except ValueError:
        return False
    return True


def _ms(stats: Mapping[str, float], key: str) -> str:
    return f"{stats.get(key, 0.0):,.1f}"


def report_text(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """The reports as one table (latencies in ms), then one line per target with failures."""
    rows = []
    for name, rep in reports.items():
        ttft, itl, e2e = rep["ttft_ms"], rep["itl_ms"], rep["e2e_ms"]
        rows.append([name, str(rep["sent"]), str(rep["completed"]), str(rep["failed"]), f"{rep['offered_rps']:.2f}",
                     f"{rep['achieved_rps']:.2f}", _ms(ttft, "mean"), _ms(ttft, "p50"), _ms(ttft, "p90"),
                     _ms(ttft, "p99"), _ms(itl, "mean"), _ms(itl, "p90"), _ms(itl, "p99"), _ms(e2e, "mean"),
                     _ms(e2e, "p90"), f"{rep['within_slo'] * 100:.1f}%"])
    failures = [f"failed ({name}): " + ", ".join(f"{why} x{count}" for why, count in rep["errors"].items())
                for name, rep in reports.items() if rep.get("errors")]
    return "\n".join([text_table(HEADER, rows), "latencies in ms", *failures])


def rounded(value: Any, digits: int = 3) -> Any:
    """``value`` with every float rounded to ``digits`` decimals (dicts and lists walked)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, Mapping):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


def report_json(report: Any) -> str:
    """A report (or reports) as indented JSON with floats rounded to 3 decimals."""
    return json.dumps(rounded(report), indent=1)
