"""Cycle records as text tables, for people: one table per cycle (what was observed, decided and done per
server), and one server's decisions over many cycles. Used by ``python -m services.controller history`` and
the demo. Latencies are ms, shown as value/SLO with '!' where the value misses the SLO; "obs/model" is the
model-vs-reality check (observed / predicted at the current allocation; '!' while its warning stands); a batch
the pod's --max-num-seqs capped reads '608>4' (decided > applied). A pool's classes follow the table, one line
each: its rate, the rate per replica planned and the predicted mean end-to-end latency against its bound (s)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.core.model import SLO_PERCENTILES

COLUMNS = ["load rpm", "source", "obs ITL/SLO", "obs TTFT/SLO", "acc", "batch", "replicas", "pred ITL/SLO",
           "pred TTFT/SLO", "obs/model", "percentile SLOs obs/pred/SLO", "action"]
"""The per-server columns of a cycle table (after the server name)."""


def number(value: Any, digits: int = 0) -> str:
    """``value`` with thousands separators and ``digits`` decimals; '-' when absent."""
    if value is None or value == "":
        return "-"
    return f"{float(value):,.{digits}f}"


def versus(observed: Any, slo: Any) -> str:
    """'observed/slo' with a mark when the observation misses the SLO."""
    if observed is None:
        return "-/" + number(slo)
    miss = slo not in (None, 0) and float(observed) > float(slo)
    return f"{number(observed)}/{number(slo)}{' !' if miss else ''}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table with a rule under the header."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
             for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def server_cells(row: Mapping[str, Any]) -> list[str]:
    """The COLUMNS of one server's row of a cycle record."""
    replicas = f"{number(row.get('current_replicas'))} -> {number(row.get('replicas'))}" if "replicas" in row \
        else number(row.get("current_replicas"))
    action = row.get("action", row.get("unallocated_reason", "-"))
    batch = number(row.get("max_batch"))
    capped = re.search(r"batch \d+ above the pod's --max-num-seqs (\d+)", str(row.get("action_reason") or ""))
    if capped:
        batch += f">{capped.group(1)}"
    return [number(row.get("arrival_rate_rpm"), 1), row.get("load_source") or "-",
            versus(row.get("observed_itl_ms"), row.get("slo_itl_ms")),
            versus(row.get("observed_ttft_ms"), row.get("slo_ttft_ms")),
            row.get("accelerator", row.get("current_accelerator", "-")), batch,
            replicas, versus(row.get("predicted_itl_ms"), row.get("slo_itl_ms")),
            versus(row.get("predicted_ttft_ms"), row.get("slo_ttft_ms")), model_check(row), percentiles(row), action]


def percentiles(row: Mapping[str, Any]) -> str:
    """The percentile SLOs of a row, each 'TTFT P90 850/610/900' (observed / predicted / target, '!' where the
    observation or the prediction misses); '-' for a class without percentile targets."""
    cells = []
    for metric in ("ttft", "itl"):
        for q in SLO_PERCENTILES:
            slo = row.get(f"slo_{metric}_ms_p{q}")
            if not slo:
                continue
            observed, predicted = row.get(f"observed_{metric}_ms_p{q}"), row.get(f"predicted_{metric}_ms_p{q}")
            miss = any(v is not None and float(v) > float(slo) for v in (observed, predicted))
            cells.append(f"{metric.upper()} P{q} {number(observed)}/{number(predicted)}/{number(slo)}"
                         + (" !" if miss else ""))
    return ", ".join(cells) or "-"


def model_check(row: Mapping[str, Any]) -> str:
    """The model-vs-reality column: observed / predicted latency at the current allocation, the ratio farthest
    from 1 (e.g. 'TTFT x6.8'), with '!' while the warning stands; '-' without a check."""
    ratios = [(name, row.get(f"model_{name.lower()}_ratio")) for name in ("ITL", "TTFT")]
    ratios = [(name, ratio) for name, ratio in ratios if isinstance(ratio, int | float) and ratio > 0]
    if not ratios:
        return "-"
    name, ratio = max(ratios, key=lambda item: max(item[1], 1 / item[1]))
    shown = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"
    return f"{name} x{shown}" + (" !" if row.get("model_mismatch") else "")


def cycle_head(record: Mapping[str, Any], status: int | None = None) -> str:
    """'cycle N (trigger): outcome (HTTP s) - reason  [phase timings]  cost'."""
    timings = record.get("timings_ms") or {}
    head = (f"cycle {record.get('cycle_id', '?')}"
            + (f" ({record['trigger']})" if record.get("trigger") else "")
            + f": {record.get('outcome', 'failed')}"
            + (f" (HTTP {status})" if status is not None else "")
            + (f" at {record['started_at']}" if status is None and record.get("started_at") else "")
            + (f" - {record['skip_reason']}" if record.get("skip_reason") else "")
            + "  [" + ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()) + "]")
    if record.get("total_cost_per_hour"):
        head += f"  cost {record['total_cost_per_hour']:,.2f}/h"
    return head


def cycle_text(record: Mapping[str, Any], status: int | None = None) -> str:
    """One cycle record (an /invoke answer, or a cycle-log line): the head line, the per-server table
    (observed | decided | done) and the warnings."""
    rows = [[row["server"], *server_cells(row)] for row in record.get("rows") or []]
    warnings = "".join(f"\n  warning: {w}" for w in record.get("warnings") or [])
    body = table(["server", *COLUMNS], rows) if rows else "  (no server collected)"
    classes = "".join(f"\n{line}" for row in record.get("rows") or [] for line in pool_lines(row))
    return cycle_head(record, status) + "\n" + body + classes + warnings


def pool_lines(row: Mapping[str, Any]) -> list[str]:
    """A pool row's classes (its ``pool_classes``), one line each: 'pool P class Alan (priority 0): 10.0 rpm,
    5.0 rpm/replica, latency 6.12/10.00 s' ('!' where the prediction misses the bound); [] for another row."""
    lines = []
    for item in row.get("pool_classes") or []:
        planned = (f", {number(item['rate_per_replica_rpm'], 1)} rpm/replica" if "rate_per_replica_rpm" in item
                   else "")
        predicted, bound = item.get("predicted_latency_s"), item.get("latency_bound_s")
        miss = predicted is not None and bound is not None and float(predicted) > float(bound)
        latency = (f", latency {number(predicted, 2)}/{number(bound, 2)} s" + (" !" if miss else "")
                   if "predicted_latency_s" in item or bound is not None else "")
        lines.append(f"  pool {row.get('server')} class {item.get('class')} (priority {item.get('priority')}): "
                     f"{number(item.get('arrival_rate_rpm'), 1)} rpm{planned}{latency}")
    return lines


def server_history_text(records: Iterable[Mapping[str, Any]], server: str) -> str:
    """One server's row of each cycle, oldest first, with the cycle's time, id and outcome."""
    rows = []
    for record in records:
        for row in record.get("rows") or []:
            if row.get("server") == server:
                rows.append([str(record.get("started_at", "-"))[:19].replace("T", " "), str(record.get("cycle_id")),
                             record.get("outcome", "-"), *server_cells(row)])
    return f"server {server}\n" + table(["time (UTC)", "cycle", "outcome", *COLUMNS], rows)
