"""`make demo`: the control loop closing on the local cluster, told as it happens.

The controller runs as in production: its own timer (a cycle every 60 s), the forecast and the fast path on
(docs/contract.md s9), the fast path watching every 5 s over 15 s (the demo's Prometheus scrapes every second;
the production defaults, 10 s over 30 s, suit a 15 s scrape). The demo only watches the cycle log.

Timeline (seconds from the start of the load; the timer started a few seconds before the load):
  0         base load on the three servers
  ~55       periodic cycle 1: every server is within its SLO on one replica -> nothing to change
  70        the stepped server's load triples; one replica cannot carry it, its queue and TTFT grow
  ~85       the fast path sees the queue depart from the model's prediction and runs a cycle now (logged with
            why): the optimizer sizes the server up, the actuator patches the Deployment; the new replica
            starts (start-up delay), the queue drains
  ~115      periodic cycle 2 (the one that would have scaled without the fast path): nothing to change
  +window   once the queue drained, a cycle on demand (GET /invoke): the observed latency (collector and client
            side) is back within the SLO; no replica removed (the forecast may still read the step as a rise and
            add one: a minute after a step its history cannot tell it from a ramp)
Then a client-side table of latency by phase and the stepped server's TTFT over the period after the step.
``--reactive`` runs the same timeline with the forecast and the fast path off: periodic cycle 2 scales up (the
old timeline, for comparison). Exit status 0 when the loop behaved as described, 1 otherwise.

The stepped server's class also states P90 targets (harness/scenario.py): the scaling cycle sizes it on its P90
TTFT (the prediction is in the cycle table's percentile column), the actuator applies those replicas, and the
cycle on demand and the client-side table show the P90s observed (the collector's from vLLM's histograms) beside
the targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from demo.report import cycle_text, phases_text
from emulator.prometheus import prometheus_binary
from harness.scenario import Scenario, slo
from harness.stack import Stack
from services.controller.report import number

Print = Callable[[str], None]

PERIOD_S = 60.0
PRODUCTION = {"INFERNO_CONTROL_PERIOD": f"{PERIOD_S:g}", "INFERNO_FAST_PATH_INTERVAL": "5",
              "INFERNO_FAST_PATH_WINDOW": "15"}
"""The demo's control settings: the production period, forecast and fast path on by default, the fast path
watching every 5 s over 15 s (the demo scrapes every second)."""
REACTIVE = {**PRODUCTION, "INFERNO_FORECAST": "off", "INFERNO_FAST_PATH": "off"}
"""The same timer without issue 22's forecast and fast path: each periodic cycle sizes the load it measured."""
STEP_AT_S = 70.0
"""The step comes after the first periodic cycle (at most one period after the timer started, which is before
the load), so that the second periodic cycle is 35-50 s after the step."""


@dataclass
class DemoResult:
    """What one run saw: the /invoke answers in order, client-side reports by phase, and the checks."""

    cycles: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    phases: list[tuple[str, dict[str, dict]]] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed (and there were checks)."""
        return bool(self.checks) and all(passed for _, passed in self.checks)


def _rows(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["server"]: row for row in record.get("rows") or []}


def _within(value: Any, limit: Any) -> bool:
    return value is not None and (not limit or float(value) <= float(limit))


def _p90(row: dict[str, Any], kind: str) -> str:
    """'TTFT 420/1,000 ms, ITL 24/80 ms' of a cycle row's ``kind`` ("predicted" or "observed") P90s."""
    return ", ".join(f"{metric.upper()} {number(row.get(f'{kind}_{metric}_ms_p90'))}/"
                     f"{number(row.get(f'slo_{metric}_ms_p90'))} ms" for metric in ("ttft", "itl"))


def _p90_within(row: dict[str, Any], kind: str) -> bool:
    """True when the row states P90 targets and its ``kind`` P90s are known and within them."""
    targets = [(row.get(f"{kind}_{m}_ms_p90"), row.get(f"slo_{m}_ms_p90")) for m in ("ttft", "itl")]
    return any(slo for _, slo in targets) and all(_within(value, slo) for value, slo in targets if slo)


def _raised(record: dict[str, Any], name: str) -> bool:
    """True when the cycle changed ``name``'s Deployment to more replicas than it asked for before."""
    row = _rows(record).get(name, {})
    return row.get("action") == "changed" and int(row.get("replicas") or 0) > int(row.get("current_replicas") or 0)


class DemoRun:
    """One run of the timeline in the module docstring over a started Stack; ``reactive`` when the controller
    runs without the forecast and the fast path (the checks then expect the second periodic cycle to scale)."""

    def __init__(self, stack: Stack, out: Print = print, reactive: bool = False) -> None:
        self.stack, self.scenario, self.out, self.reactive = stack, stack.scenario, out, reactive
        self.result = DemoResult()
        self.load = None
        self._load_wall_s = 0.0
        self._log_offset = 0

    def t(self) -> float:
        """Seconds since the load started."""
        return self.load.elapsed_s if self.load else 0.0

    def say(self, text: str) -> None:
        """Print one timestamped line."""
        self.out(f"[t={self.t():6.1f} s] {text}")

    def wait_until(self, t_s: float) -> None:
        """Sleep until ``t_s`` seconds after the load started."""
        time.sleep(max(t_s - self.t(), 0.0))

    def started_s(self, record: dict[str, Any]) -> float:
        """When a cycle started, in seconds since the load started (from its started_at)."""
        started = datetime.datetime.fromisoformat(str(record["started_at"])).timestamp()
        return started - self._load_wall_s

    def ended_s(self, record: dict[str, Any]) -> float:
        """When a cycle ended (its start plus its total time), seconds since the load started."""
        return self.started_s(record) + float((record.get("timings_ms") or {}).get("total", 0.0)) / 1000.0

    def _show(self, record: dict[str, Any], status: int | None = None) -> None:
        self.result.cycles.append((status or 0, record))
        self.out(f"[t={self.started_s(record):6.1f} s] " + cycle_text(record, status) + "\n")

    def next_cycle(self, accept: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any] | None:
        """Follow the controller's cycle log, printing each new cycle, until one that ``accept``s (returned)
        or ``timeout_s`` (None)."""
        end = self.t() + timeout_s
        path = self.stack.cycle_log_path
        while self.t() < end:
            size = os.path.getsize(path) if os.path.exists(path) else 0
            if size > self._log_offset:
                with open(path, "rb") as handle:
                    handle.seek(self._log_offset)
                    chunk = handle.read()
                complete = chunk[:chunk.rfind(b"\n") + 1]
                self._log_offset += len(complete)
                for line in complete.splitlines():
                    record = json.loads(line)
                    self._show(record)
                    if accept(record):
                        return record
            time.sleep(0.25)
        self.say(f"no such cycle within {timeout_s:.0f} s")
        return None

    def invoke(self, why: str) -> dict[str, Any]:
        """GET /invoke, print the cycle table, keep the answer (the cycle log's copy is skipped)."""
        self.say(f"GET /invoke ({why})")
        status, record = self.stack.services.invoke()
        path = self.stack.cycle_log_path
        self._log_offset = os.path.getsize(path) if os.path.exists(path) else self._log_offset
        self._show(record, status)
        return record

    def check(self, what: str, passed: bool) -> None:
        """Record and print one check."""
        self.result.checks.append((what, passed))
        self.out(f"  [{'ok' if passed else 'FAILED'}] {what}")

    def run(self) -> DemoResult:
        """Run the timeline; returns the result (also when a check fails)."""
        sc, stack = self.scenario, self.stack
        stepped = sc.stepped
        self.load = stack.cluster.start_load(seed=1)
        self._load_wall_s = time.time()
        self.say(f"load started: {', '.join(f'{s.name} {s.base_rps:g} req/s' for s in sc.servers)}; "
                 f"the controller's timer runs a cycle every {PERIOD_S:g} s")

        def periodic(record: dict[str, Any]) -> bool:
            return record.get("trigger") == "period"

        first = self.next_cycle(periodic, timeout_s=PERIOD_S + 30.0) or {}
        self.check(f"periodic cycle 1 applied before the step (t={self.ended_s(first) if first else 0:.0f} s < "
                   f"{sc.step_at_s:g} s)", first.get("outcome") == "applied" and self.ended_s(first) < sc.step_at_s)
        self.check("periodic cycle 1 keeps one replica per server at the base load",
                   bool(first) and all(r.get("replicas") == 1 for r in _rows(first).values()))

        self.wait_until(sc.step_at_s)
        before = stack.replicas()
        self.say(f"{stepped}: load x{sc.step_factor:g} -> {sc.server(stepped).base_rps * sc.step_factor:g} req/s")
        scaled = self.next_cycle(lambda r: periodic(r) or _raised(r, stepped), timeout_s=PERIOD_S + 30.0) or {}
        t_scaled = self.ended_s(scaled) if scaled else self.t()
        after = stack.replicas()
        rows = _rows(scaled)
        trigger = str(scaled.get("trigger", ""))
        if self.reactive:
            self.check(f"periodic cycle 2 raised {stepped}'s replicas ({before[stepped]} -> {after[stepped]}), "
                       f"{t_scaled - sc.step_at_s:.0f} s after the step",
                       periodic(scaled) and _raised(scaled, stepped) and after[stepped] > before[stepped])
        else:
            self.check(f"the fast path raised {stepped}'s replicas ({before[stepped]} -> {after[stepped]}) "
                       f"{t_scaled - sc.step_at_s:.0f} s after the step, before periodic cycle 2 "
                       f"(trigger: {trigger or '-'})",
                       trigger.startswith("fast path:") and stepped in trigger and _raised(scaled, stepped)
                       and after[stepped] > before[stepped])
        self.check("the scaling cycle left the other servers alone",
                   all(after[name] == before[name] for name in before if name != stepped))
        self.check("the scaling cycle's predicted ITL and TTFT meet every SLO",
                   bool(rows) and all(_within(r.get("predicted_itl_ms"), r.get("slo_itl_ms"))
                                      and _within(r.get("predicted_ttft_ms"), r.get("slo_ttft_ms"))
                                      for r in rows.values()))
        for server in self._p90_servers():
            row = rows.get(server.name, {})
            self.check(f"the scaling cycle sized {server.name} on its P90 targets (predicted P90 "
                       f"{_p90(row, 'predicted')}; mean TTFT {number(row.get('predicted_ttft_ms'))} ms) and its "
                       f"Deployment runs the {number(row.get('replicas'))} replicas decided",
                       _p90_within(row, "predicted") and after[server.name] == row.get("replicas"))

        deployment = sc.server(stepped).deployment
        ready = stack.cluster.reconciler.wait_ready("llm", deployment, after[stepped], timeout_s=60.0)
        t_ready = self.t()
        self.say(f"{stepped}: {after[stepped]} replicas ready" if ready else f"{stepped}: replicas NOT ready")
        t_drained = self._wait_drained(stepped, timeout_s=120.0)
        second = scaled
        if not self.reactive:
            second = self.next_cycle(periodic, timeout_s=PERIOD_S + 30.0) or {}
            self.check("periodic cycle 2 found nothing to change: the step was handled before it",
                       second.get("outcome") == "applied" and not _raised(second, stepped)
                       and stack.replicas() == after)
            self.check(f"{stepped}'s {after[stepped]} replicas were Ready before periodic cycle 2 started "
                       f"(t={self.started_s(second) if second else 0:.0f} s)",
                       ready and bool(second) and t_ready < self.started_s(second))
        self.wait_until(t_drained + sc.window_s + 3.0)
        third = self.invoke("after the new replicas started")
        t_third = self.t()
        row = _rows(third).get(stepped, {})
        now = stack.replicas()
        if row.get("forecast_rising"):
            self.say(f"{stepped}'s forecast still reads the step as a rise (sized for its upper bound "
                     f"{number(row.get('forecast_upper_rpm'))} req/min, measured "
                     f"{number(row.get('measured_rate_rpm'))}): a minute after the step, its history cannot yet "
                     "tell a step from a ramp")
        self.check(f"the cycle on demand applied, kept {stepped}'s {after[stepped]} replicas or more "
                   f"({now[stepped]}) and left the other servers alone",
                   third.get("outcome") == "applied" and now[stepped] >= after[stepped]
                   and all(now[name] == after[name] for name in after if name != stepped))
        self.check(f"{stepped}'s observed ITL and TTFT (collector, last {sc.window_s} s) are within the SLO",
                   _within(row.get("observed_itl_ms"), row.get("slo_itl_ms"))
                   and _within(row.get("observed_ttft_ms"), row.get("slo_ttft_ms")))
        for server in self._p90_servers():
            row = _rows(third).get(server.name, {})
            self.check(f"{server.name}'s observed P90s (collector, vLLM's histograms over the last {sc.window_s} s) "
                       f"are within its P90 targets ({_p90(row, 'observed')})", _p90_within(row, "observed"))

        self.result.phases = [
            ("base", self.load.window_reports(5.0, sc.step_at_s)),
            ("stepped, before scale-up", self.load.window_reports(sc.step_at_s, t_scaled)),
            ("scaling, queue draining", self.load.window_reports(t_scaled, t_drained)),
            ("after scale-up", self.load.window_reports(t_drained, t_third - 3.0)),
        ]
        slos, p90_slos = {}, {}
        for server in sc.servers:
            target = slo(stack.system, server)
            slos[f"llm/{server.deployment}"] = (target.slo_itl_ms, target.slo_ttft_ms)
            p90_slos[f"llm/{server.deployment}"] = (target.slo_itl_p90_ms, target.slo_ttft_p90_ms)
        self.out("\nclient-side latency by phase (ms; '!' marks a miss of the SLO):")
        self.out(phases_text(self.result.phases, slos, p90_slos) + "\n")
        itl, ttft = slos[f"llm/{deployment}"]
        stepping = self.load.window_reports(sc.step_at_s, sc.step_at_s + PERIOD_S)[f"llm/{deployment}"]
        self.out(f"{stepped}'s requests sent in the period after the step ({sc.step_at_s:g}-"
                 f"{sc.step_at_s + PERIOD_S:g} s): TTFT mean {stepping['ttft_ms']['mean']:.0f} ms, "
                 f"p90 {stepping['ttft_ms']['p90']:.0f} ms, {stepping['within_slo'] * 100:.0f}% within the SLO "
                 f"(TTFT {ttft:.0f} ms, ITL {itl:.0f} ms); scaled up {t_scaled - sc.step_at_s:.0f} s after the step"
                 + (" by periodic cycle 2" if self.reactive else " by the fast path"))
        recovered = self.result.phases[-1][1][f"llm/{deployment}"]
        mean_itl, mean_ttft = recovered["itl_ms"]["mean"], recovered["ttft_ms"]["mean"]
        self.check(f"{stepped}'s client-side mean ITL and TTFT after scale-up are within the SLO "
                   f"({mean_itl:.0f}/{itl:.0f} ms, {mean_ttft:.0f}/{ttft:.0f} ms)",
                   recovered["completed"] > 0 and recovered["itl_ms"]["mean"] <= itl
                   and recovered["ttft_ms"]["mean"] <= ttft)
        for server in self._p90_servers():
            client = self.result.phases[-1][1][f"llm/{server.deployment}"]
            p90 = client["ttft_ms"]["p90"]
            self.check(f"{server.name}'s client-side P90 TTFT after scale-up is within its P90 target "
                       f"({p90:.0f}/{server.ttft_p90_ms:.0f} ms)",
                       client["completed"] > 0 and (not server.ttft_p90_ms or p90 <= server.ttft_p90_ms))
        return self.result

    def _p90_servers(self) -> list:
        """The servers whose class states P90 targets (harness.scenario.DemoServer.ttft_p90_ms/itl_p90_ms)."""
        return [s for s in self.scenario.servers if s.ttft_p90_ms > 0 or s.itl_p90_ms > 0]

    def _wait_drained(self, name: str, timeout_s: float) -> float:
        """Wait until no request of ``name`` has been waiting for 3 s in a row; the time it started."""
        end = self.t() + timeout_s
        quiet_since = None
        while self.t() < end:
            if self.stack.waiting(name) == 0:
                quiet_since = self.t() if quiet_since is None else quiet_since
                if self.t() - quiet_since >= 3.0:
                    self.say(f"{name}: queue drained")
                    return quiet_since
            else:
                quiet_since = None
            time.sleep(0.25)
        self.say(f"{name}: queue still not drained after {timeout_s:.0f} s")
        return self.t()


def main(argv: Sequence[str] | None = None, out: Print = print) -> int:
    """Entry point of ``python -m demo``; 0 when every check passed."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-prometheus", action="store_true",
                        help="let the collector scrape the replicas directly instead of querying Prometheus")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, cycle log, data)")
    parser.add_argument("--window", type=int, default=Scenario().window_s, help="metrics window, seconds")
    parser.add_argument("--reactive", action="store_true",
                        help="forecast and fast path off (the timer alone): the old timeline, for comparison")
    args = parser.parse_args(argv)
    scenario = replace(Scenario(), window_s=args.window, step_at_s=STEP_AT_S, duration_s=STEP_AT_S + 300.0)
    prometheus = not args.no_prometheus and prometheus_binary() is not None
    started = time.monotonic()
    out("inferno demo: three servers of the small sample set on the embedded local cluster; "
        f"metrics from {'Prometheus' if prometheus else 'the replicas directly (no prometheus binary found)'}")
    stack = Stack(scenario, prometheus=prometheus, control=REACTIVE if args.reactive else PRODUCTION)
    out(f"starting the cluster and the four services (work directory {stack.workdir}) ...")
    stack.start()
    out(f"  kubeconfig {stack.cluster.kubeconfig_path}; Prometheus {stack.cluster.prometheus_url or '-'}; "
        f"controller {stack.services.controller_url} (try curl {stack.services.controller_url}/invoke); "
        f"forecast and fast path {'off' if args.reactive else 'on'}")
    result = DemoResult()
    try:
        result = DemoRun(stack, out, reactive=args.reactive).run()
    finally:
        keep = args.keep or not result.ok
        out("stopping ..." + (f" (work directory kept: {stack.workdir})" if keep else ""))
        stack.stop(keep=keep)
    passed = sum(ok for _, ok in result.checks)
    out(f"demo {'passed' if result.ok else 'FAILED'}: {passed}/{len(result.checks)} checks "
        f"in {time.monotonic() - started:.0f} s")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
