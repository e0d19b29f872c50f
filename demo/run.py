"""`make demo`: the control loop closing on the local cluster, told as it happens.

Timeline (seconds from the start of the load, defaults of harness.scenario.Scenario):
  0         base load on the three servers
  ~42       cycle 1 (GET /invoke): every server is within its SLO on one replica -> nothing to change
  45        the stepped server's load triples; one replica cannot carry it, its queue and TTFT grow
  ~68       cycle 2: the collector sees the new rate; the optimizer sizes the server up; the actuator patches
            the Deployment
  then      the new replica starts (start-up delay), the queue drains
  +window   cycle 3: the observed latency (collector and client side) is back within the SLO -> no change
Then a client-side table of latency by phase. Exit status 0 when the loop behaved as above, 1 otherwise.

The stepped server's class also states P90 targets (harness/scenario.py): cycle 2 sizes it on its P90 TTFT
(the prediction is in the cycle table's percentile column), the actuator applies those replicas, and cycle 3
and the client-side table show the P90s observed (the collector's from vLLM's histograms) beside the targets.
"""

from __future__ import annotations

import argparse
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


class DemoRun:
    """One run of the timeline in the module docstring over a started Stack."""

    def __init__(self, stack: Stack, out: Print = print) -> None:
        self.stack, self.scenario, self.out = stack, stack.scenario, out
        self.result = DemoResult()
        self.load = None

    def t(self) -> float:
        """Seconds since the load started."""
        return self.load.elapsed_s if self.load else 0.0

    def say(self, text: str) -> None:
        """Print one timestamped line."""
        self.out(f"[t={self.t():6.1f} s] {text}")

    def wait_until(self, t_s: float) -> None:
        """Sleep until ``t_s`` seconds after the load started."""
        time.sleep(max(t_s - self.t(), 0.0))

    def invoke(self, why: str) -> dict[str, Any]:
        """GET /invoke, print the cycle table, keep the answer."""
        self.say(f"GET /invoke ({why})")
        status, record = self.stack.services.invoke()
        self.result.cycles.append((status, record))
        self.out(cycle_text(record, status) + "\n")
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
        self.say(f"load started: {', '.join(f'{s.name} {s.base_rps:g} req/s' for s in sc.servers)}")
        self.wait_until(max(sc.step_at_s - 3.0, sc.window_s + 5.0))
        first = self.invoke("base load")
        self.check("cycle 1 applied", first.get("outcome") == "applied")
        self.check("cycle 1 keeps one replica per server at the base load",
                   all(r.get("replicas") == 1 for r in _rows(first).values()))

        self.wait_until(sc.step_at_s)
        self.say(f"{stepped}: load x{sc.step_factor:g} -> {sc.server(stepped).base_rps * sc.step_factor:g} req/s")
        self.wait_until(sc.step_at_s + sc.window_s + 3.0)
        before = stack.replicas()
        second = self.invoke(f"{stepped} under {sc.step_factor:g}x load")
        t_second = self.t()
        rows = _rows(second)
        after = stack.replicas()
        self.check("cycle 2 applied", second.get("outcome") == "applied")
        self.check(f"cycle 2 raised {stepped}'s replicas ({before[stepped]} -> {after[stepped]})",
                   after[stepped] > before[stepped] and rows.get(stepped, {}).get("action") == "changed")
        self.check("cycle 2 left the other servers alone",
                   all(after[name] == before[name] for name in before if name != stepped))
        self.check("cycle 2's predicted ITL and TTFT meet every SLO",
                   all(_within(r.get("predicted_itl_ms"), r.get("slo_itl_ms"))
                       and _within(r.get("predicted_ttft_ms"), r.get("slo_ttft_ms")) for r in rows.values()))
        for server in self._p90_servers():
            row = rows.get(server.name, {})
            self.check(f"cycle 2 sized {server.name} on its P90 targets (predicted P90 {_p90(row, 'predicted')}; "
                       f"mean TTFT {number(row.get('predicted_ttft_ms'))} ms) and its Deployment runs the "
                       f"{number(row.get('replicas'))} replicas decided",
                       _p90_within(row, "predicted") and after[server.name] == row.get("replicas"))

        deployment = sc.server(stepped).deployment
        ready = stack.cluster.reconciler.wait_ready("llm", deployment, after[stepped], timeout_s=60.0)
        self.say(f"{stepped}: {after[stepped]} replicas ready" if ready else f"{stepped}: replicas NOT ready")
        t_drained = self._wait_drained(stepped, timeout_s=120.0)
        self.wait_until(t_drained + sc.window_s + 3.0)
        third = self.invoke("after the new replicas started")
        t_third = self.t()
        row = _rows(third).get(stepped, {})
        self.check("cycle 3 applied and changed nothing",
                   third.get("outcome") == "applied" and stack.replicas() == after)
        self.check(f"{stepped}'s observed ITL and TTFT (collector, last {sc.window_s} s) are within the SLO",
                   _within(row.get("observed_itl_ms"), row.get("slo_itl_ms"))
                   and _within(row.get("observed_ttft_ms"), row.get("slo_ttft_ms")))
        for server in self._p90_servers():
            row = _rows(third).get(server.name, {})
            self.check(f"{server.name}'s observed P90s (collector, vLLM's histograms over the last {sc.window_s} s) "
                       f"are within its P90 targets ({_p90(row, 'observed')})", _p90_within(row, "observed"))

        self.result.phases = [
            ("base", self.load.window_reports(5.0, sc.step_at_s)),
            ("stepped, before cycle 2", self.load.window_reports(sc.step_at_s, t_second)),
            ("scaling, queue draining", self.load.window_reports(t_second, t_drained)),
            ("after scale-up", self.load.window_reports(t_drained, t_third - 3.0)),
        ]
        slos, p90_slos = {}, {}
        for server in sc.servers:
            target = slo(stack.system, server)
            slos[f"llm/{server.deployment}"] = (target.slo_itl_ms, target.slo_ttft_ms)
            p90_slos[f"llm/{server.deployment}"] = (target.slo_itl_p90_ms, target.slo_ttft_p90_ms)
        self.out("\nclient-side latency by phase (ms; '!' marks a miss of the SLO):")
        self.out(phases_text(self.result.phases, slos, p90_slos) + "\n")
        recovered = self.result.phases[-1][1][f"llm/{deployment}"]
        itl, ttft = slos[f"llm/{deployment}"]
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
    args = parser.parse_args(argv)
    scenario = replace(Scenario(), window_s=args.window)
    prometheus = not args.no_prometheus and prometheus_binary() is not None
    started = time.monotonic()
    out("inferno demo: three servers of the small sample set on the embedded local cluster; "
        f"metrics from {'Prometheus' if prometheus else 'the replicas directly (no prometheus binary found)'}")
    stack = Stack(scenario, prometheus=prometheus)
    out(f"starting the cluster and the four services (work directory {stack.workdir}) ...")
    stack.start()
    out(f"  kubeconfig {stack.cluster.kubeconfig_path}; Prometheus {stack.cluster.prometheus_url or '-'}; "
        f"controller {stack.services.controller_url} (try curl {stack.services.controller_url}/invoke)")
    result = DemoResult()
    try:
        result = DemoRun(stack, out).run()
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
