"""What a run reports (docs/simulator.md s4): per policy a summary (JSON-ready), the Markdown table, the figure.

SLO attainment is the share of the requests sent whose TTFT <= the SLO and whose mean inter-token latency
(the request's (last token - first token) / (output tokens - 1), GuideLLM's per-request ITL) <= the SLO; a
request never served (dropped, or unfinished when the run ends) counts as a miss. The same samples give the
verdict for the SLO read as means and as P50/P90/P95/P99 (slo_verdicts; a scenario's `slo.percentile` picks
the reading the optimizer sizes for). For mean-based SLOs (Inferno's
targets are means) the share of minutes whose requests' mean TTFT and mean ITL meet the SLO is reported too.
Percentiles are nearest-rank over finished requests. GPU-hours count every pod from creation to its end within
the load's duration.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sim.scenario import Scenario
from sim.simulate import RequestRecord, RunResult

ATTAINMENT_GOAL = 0.99
"""A minute 'holds the SLO' when at least this share of its requests met it (for the recovery time)."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


def met(record: RequestRecord, scenario: Scenario) -> bool:
    """Whether the request met both SLOs."""
    return (record.ttft_s is not None and record.itl_s is not None
            and record.ttft_s * 1000.0 <= scenario.slo.ttft_ms and record.itl_s * 1000.0 <= scenario.slo.itl_ms)


def replicas_at(timeline: Sequence[tuple[float, int, int]], t_s: float, ready: bool = True) -> int:
    """Ready (or spec) replicas at ``t_s`` from a run's timeline."""
    value = 0
    for when, spec, ready_count in timeline:
        if when > t_s:
            break
        value = ready_count if ready else spec
    return value


def minute_hits(result: RunResult, scenario: Scenario) -> tuple[list[int], list[int]]:
    """Per minute of the load: (requests arriving in it that met the SLO, requests arriving in it)."""
    minutes = max(int(math.ceil(scenario.duration_s / 60.0)), 1)
    hits, counts = [0] * minutes, [0] * minutes
    for record in result.requests:
        minute = min(int(record.arrival_s // 60), minutes - 1)
        counts[minute] += 1
        hits[minute] += met(record, scenario)
    return hits, counts


def minute_attainment(result: RunResult, scenario: Scenario) -> list[float | None]:
    """Per minute of the load: the share of requests arriving in it that met the SLO (None: no request)."""
    hits, counts = minute_hits(result, scenario)
    return [h / c if c else None for h, c in zip(hits, counts, strict=True)]


def minute_means_met(result: RunResult, scenario: Scenario) -> list[bool | None]:
    """Per minute of the load: whether the mean TTFT and mean ITL of the requests arriving in it (finished ones;
    None: none finished) meet the SLO, as a mean-based SLO reads (Inferno's targets are means)."""
    minutes = max(int(math.ceil(scenario.duration_s / 60.0)), 1)
    ttft: list[list[float]] = [[] for _ in range(minutes)]
    itl: list[list[float]] = [[] for _ in range(minutes)]
    unserved = [0] * minutes
    for record in result.requests:
        minute = min(int(record.arrival_s // 60), minutes - 1)
        if record.ttft_s is None:
            unserved[minute] += 1
            continue
        ttft[minute].append(record.ttft_s * 1000.0)
        itl[minute].append(record.itl_s * 1000.0)
    found: list[bool | None] = []
    for minute in range(minutes):
        if not ttft[minute]:
            found.append(False if unserved[minute] else None)
            continue
        found.append(unserved[minute] == 0 and sum(ttft[minute]) / len(ttft[minute]) <= scenario.slo.ttft_ms
                     and sum(itl[minute]) / len(itl[minute]) <= scenario.slo.itl_ms)
    return found


def minute_ttft_p90_ms(result: RunResult, scenario: Scenario) -> list[float | None]:
    """Per minute of the load: P90 TTFT (ms) of the finished requests arriving in it."""
    minutes = max(int(math.ceil(scenario.duration_s / 60.0)), 1)
    buckets: list[list[float]] = [[] for _ in range(minutes)]
    for record in result.requests:
        if record.ttft_s is not None:
            buckets[min(int(record.arrival_s // 60), minutes - 1)].append(record.ttft_s * 1000.0)
    return [percentile(b, 90) for b in buckets]


def load_changes_s(scenario: Scenario) -> list[float]:
    """Times (s) where the offered rate changes step-wise or starts a ramp (phase edges with a new rate)."""
    changes, t = [], 0.0
    phases = scenario.load.schedule.phases
    for previous, phase in zip(phases, phases[1:], strict=False):
        t += previous.duration_s
        if abs(phase.rate_rps - previous.to_rps) > 1e-9 or (phase.to_rps != phase.rate_rps
                                                            and previous.to_rps == previous.rate_rps):
            changes.append(t)
    return changes


def recovery_s(hits: Sequence[int], counts: Sequence[int], changes: Sequence[float]) -> list[float]:
    """For each load change: seconds from it to the start of the first minute from which, up to the next change
    (or the end), the requests met the SLO at >= ATTAINMENT_GOAL taken together; 0 when that holds from the
    change's minute on; up to the next change (or the end) when it never does (censored). ``hits`` and
    ``counts``: per minute, requests that met the SLO and requests."""
    found = []
    edges = [*changes, len(counts) * 60.0]
    for change, following in zip(changes, edges[1:], strict=False):
        first, stop = int(change // 60), min(int(math.ceil(following / 60.0)), len(counts))
        delay, met_after, sent_after = following - change, 0, 0
        for minute in range(stop - 1, first - 1, -1):  # suffix sums, from the end of the stretch back
            met_after += hits[minute]
            sent_after += counts[minute]
            if sent_after and met_after >= ATTAINMENT_GOAL * sent_after:
                delay = max(minute * 60.0 - change, 0.0)
        found.append(delay)
    return found


def offered_rps(scenario: Scenario, start_s: float, end_s: float) -> float:
    """The schedule's mean rate over [start_s, end_s] (1 s steps)."""
    steps = max(int(end_s - start_s), 1)
    return sum(scenario.load.schedule.rate_at(start_s + k + 0.5) for k in range(steps)) / steps


def measured_vs_offered(result: RunResult, scenario: Scenario) -> dict[str, Any]:
    """For a policy that measures the arrival rate (inferno: the collector's completion rate over the window):
    how it compared with the offered rate of the same window, and how many calls had no figure."""
    window = scenario.metrics.window_s
    ratios = [rate / offered for t, rate in result.observed_rates
              if rate is not None and (offered := offered_rps(scenario, max(t - window, 0.0), t)) > 0]
    if not result.observed_rates:
        return {}
    ordered = sorted(ratios)
    return {"measured_to_offered_rate_median": ordered[len(ordered) // 2] if ordered else None,
            "measured_to_offered_rate_min": ordered[0] if ordered else None,
            "cycles_without_rate": sum(1 for _, rate in result.observed_rates if rate is None)}


def collector_percentiles(result: RunResult, scenario: Scenario) -> dict[str, Any]:
    """For a policy whose collector reads vLLM's TTFT histogram (inferno): per cycle, its P90 TTFT
    (histogram_quantile over vLLM's buckets in the window) over the nearest-rank P90 of the TTFTs of the requests
    whose first token came in the same window (what the histogram counted); the median and extremes of that
    ratio over the cycles with both. Empty for other policies."""
    if not result.observed_percentiles:
        return {}
    window = scenario.metrics.window_s
    firsts = sorted((r.arrival_s + r.ttft_s, r.ttft_s * 1000.0) for r in result.requests if r.ttft_s is not None)
    times = [t for t, _ in firsts]
    ratios = []
    for t_s, figures in result.observed_percentiles:
        observed = figures.get("observed_ttft_ms_p90")
        actual = percentile([v for _, v in firsts[bisect.bisect_right(times, t_s - window):
                                                  bisect.bisect_right(times, t_s)]], 90)
        if observed is not None and actual:
            ratios.append(observed / actual)
    ordered = sorted(ratios)
    return {"collector_ttft_p90_to_requests_median": ordered[len(ordered) // 2] if ordered else None,
            "collector_ttft_p90_to_requests_min": ordered[0] if ordered else None,
            "collector_ttft_p90_to_requests_max": ordered[-1] if ordered else None,
            "collector_ttft_p90_cycles": len(ordered)}


def _share(flags: Sequence[bool | None]) -> float:
    known = [f for f in flags if f is not None]
    return sum(known) / len(known) if known else 1.0


def summarize(result: RunResult, scenario: Scenario, oracle: RunResult | None = None) -> dict[str, Any]:
    """The summary of one policy's run (the keys of summary.json)."""
    records = result.requests
    finished = [r for r in records if r.ttft_s is not None]
    ttft = [r.ttft_s * 1000.0 for r in finished]
    itl = [r.itl_s * 1000.0 for r in finished]
    attained = sum(met(r, scenario) for r in records)
    per_minute = minute_attainment(result, scenario)
    recoveries = recovery_s(*minute_hits(result, scenario), load_changes_s(scenario))
    minutes = int(math.ceil(scenario.duration_s / 60.0))
    ready = [replicas_at(result.timeline, m * 60.0 + 30.0) for m in range(minutes)]
    short = None
    if oracle is not None:
        short = sum(max(replicas_at(oracle.timeline, m * 60.0 + 30.0) - r, 0) for m, r in enumerate(ready))
    return {
        "policy": result.policy, "requests": len(records), "finished": len(finished),
        "dropped": sum(1 for r in records if r.dropped), "unfinished": len(records) - len(finished),
        "slo_attainment": attained / len(records) if records else 1.0,
        "ttft_mean_ms": sum(ttft) / len(ttft) if ttft else None,
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p90_ms": percentile(ttft, 90), "ttft_p99_ms": percentile(ttft, 99),
        "itl_mean_ms": sum(itl) / len(itl) if itl else None,
        "itl_p50_ms": percentile(itl, 50), "itl_p90_ms": percentile(itl, 90), "itl_p99_ms": percentile(itl, 99),
        "gpu_hours": result.gpu_hours, "cost": result.gpu_hours * scenario.server.cost_per_hour,
        "scale_events": result.scale_events, "replica_minutes_short_of_oracle": short,
        "mean_ready_replicas": sum(ready) / len(ready) if ready else 0.0, "max_ready_replicas": max(ready, default=0),
        "recovery_s": recoveries, "worst_recovery_s": max(recoveries) if recoveries else None,
        "minutes_meeting_goal": sum(1 for v in per_minute if v is None or v >= ATTAINMENT_GOAL),
        "minutes": len(per_minute),
        "mean_slo_minutes": _share(minute_means_met(result, scenario)),
        **slo_verdicts(result, scenario, attained / len(records) if records else 1.0, ttft, itl),
        **measured_vs_offered(result, scenario),
        **collector_percentiles(result, scenario),
    }


def slo_verdicts(result: RunResult, scenario: Scenario, attainment: float, ttft_ms: Sequence[float],
                 itl_ms: Sequence[float]) -> dict[str, Any]:
    """Whether the run held its SLO read as means and read as P50/P90/P95/P99, from the same per-request
    samples: a mean SLO holds when the finished requests' mean TTFT and mean ITL are within the limits and
    none went unserved; a percentile SLO Pq when at least q% of the requests sent met both limits (the
    per-request attainment). ``slo_reading`` is how the scenario reads its SLO (what the optimizer sized for),
    ``slo_held`` the verdict in that reading, ``minutes_meeting_slo_reading`` the share of minutes it held in."""
    unserved = any(r.ttft_s is None for r in result.requests)
    mean_held = (not unserved and bool(ttft_ms) and sum(ttft_ms) / len(ttft_ms) <= scenario.slo.ttft_ms
                 and sum(itl_ms) / len(itl_ms) <= scenario.slo.itl_ms)
    held = {f"slo_p{q}_held": attainment >= q / 100.0 for q in (50, 90, 95, 99)}
    q = scenario.slo.percentile
    if q:
        hits, counts = minute_hits(result, scenario)
        minutes = [h / c >= q / 100.0 if c else None for h, c in zip(hits, counts, strict=True)]
    else:
        minutes = minute_means_met(result, scenario)
    return {"slo_reading": scenario.slo.reading, "slo_mean_held": mean_held, **held,
            "slo_held": held[f"slo_p{q}_held"] if q else mean_held,
            "minutes_meeting_slo_reading": _share(minutes)}


def verdict_lines(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per policy one line: attainment, the SLO read as means and as P50..P99 held or missed (the same
    per-request samples), and the verdict in the scenario's own reading with its share of minutes."""
    lines = []
    for s in summaries:
        verdicts = ", ".join(f"{name} {'held' if s[f'slo_{name}_held'] else 'missed'}"
                             for name in ("mean", "p50", "p90", "p95", "p99"))
        lines.append(f"{s['policy']:8s} attainment {100 * s['slo_attainment']:.2f}%: {verdicts}; in its reading "
                     f"({s['slo_reading']}) {'held' if s['slo_held'] else 'missed'}, "
                     f"{100 * s['minutes_meeting_slo_reading']:.0f}% of minutes")
    return lines


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def table(scenario: Scenario, summaries: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table of one scenario (docs/simulator.md s4)."""
    oracle = next((s for s in summaries if s["policy"] == "oracle"), None)
    lines = [
        "| policy | requests sent / finished / dropped | SLO attainment | TTFT p50 / p90 / p99 ms "
        "| ITL p50 / p90 / p99 ms | minutes meeting mean SLO | GPU-hours | x oracle | cost "
        "| replica-min short of oracle | scale events | worst recovery s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ratio = s["gpu_hours"] / oracle["gpu_hours"] if oracle and oracle["gpu_hours"] else None
        lines.append(
            f"| {s['policy']} | {s['requests']} / {s['finished']} / {s['dropped']} | {100 * s['slo_attainment']:.2f}% "
            f"| {_fmt(s['ttft_p50_ms'])} / {_fmt(s['ttft_p90_ms'])} / {_fmt(s['ttft_p99_ms'])} "
            f"| {_fmt(s['itl_p50_ms'], 1)} / {_fmt(s['itl_p90_ms'], 1)} / {_fmt(s['itl_p99_ms'], 1)} "
            f"| {100 * s['mean_slo_minutes']:.0f}% | {s['gpu_hours']:.2f} | {_fmt(ratio, 2)} | {s['cost']:.2f} "
            f"| {_fmt(s['replica_minutes_short_of_oracle'])} | {s['scale_events']} | {_fmt(s['worst_recovery_s'])} |")
    return "\n".join(lines)


def figure(scenario: Scenario, results: Sequence[RunResult], path: str) -> None:
    """One PNG: offered rate, Ready replicas per policy, P90 TTFT per minute (log scale) with the SLO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = max(int(math.ceil(scenario.duration_s / 60.0)), 1)
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    times = [t / 60.0 for t in range(0, int(scenario.duration_s) + 1, 10)]
    axes[0].plot(times, [scenario.load.schedule.rate_at(t * 60.0) for t in times], color="black")
    axes[0].set_ylabel("offered rate (req/s)")
    axes[0].set_title(f"{scenario.name}: offered load, Ready replicas, P90 TTFT per minute")
    for result in results:
        steps = [(t / 60.0, ready) for t, _, ready in result.timeline] + [(scenario.duration_s / 60.0, None)]
        xs, ys = [], []
        for (t, ready), (t_next, _) in zip(steps, steps[1:], strict=False):
            xs += [t, t_next]
            ys += [ready, ready]
        axes[1].plot(xs, ys, label=result.policy)
        p90 = minute_ttft_p90_ms(result, scenario)
        axes[2].plot([m + 0.5 for m in range(minutes)], [v if v is not None else float("nan") for v in p90],
                     label=result.policy, marker=".", markersize=3)
    axes[1].set_ylabel("Ready replicas")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[2].axhline(scenario.slo.ttft_ms, color="red", linestyle="--", linewidth=1, label="TTFT SLO")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("P90 TTFT (ms)")
    axes[2].set_xlabel("minute")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
