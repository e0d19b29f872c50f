"""Emulator benchmarks: (a) model fidelity, emulated vs predicted mean ITL/TTFT; (b) CPU cost of the emulator.

(a) One replica (granite_13b on G2 perfParms, 128 prompt / 64 output tokens, max-num-seqs 4) under steady
Poisson load at 30%, 60% and 90% of the model's capacity mu(N); the emulator's mean ITL and TTFT (its own
vLLM histograms, the numbers Prometheus would give the collector) against services.optimizer.queueing's
analyze_point at the same rate. The emulator is never tuned to the model: the gap is the finding.
(b) More and more replicas, each at ~1.6 req/s, until the emulator's own timing error exceeds 5%: the engine
threads' lateness against their deadlines, and the client-side vs server-side mean ITL.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.loadgen import LoadGenerator, Target
from emulator.loadshape import Length, constant
from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams

_PERF = (17.15, 0.034, 0.0010625)
_IN, _OUT, _BATCH = 128, 64, 4


def _predict(rate_rps: float) -> tuple[float, float, float]:
    """(ITL ms, TTFT ms, capacity req/s) of the v0.3 model at ``rate_rps`` for the benchmark replica."""
    from services.core.model import PerfParms
    from services.optimizer.queueing import analyze_point
    from services.optimizer.servicetime import ReplicaModel
    model = ReplicaModel(PerfParms(*_PERF), _IN, _OUT, _BATCH, 10 * _BATCH)
    point = analyze_point(model, rate_rps / 1000.0)
    return point.itl_ms, point.ttft_ms, point.max_rate_per_ms * 1000.0 / 0.999


def _drive(servers: list[VllmServer], rate_rps: float, duration_s: float, seed: int) -> list[dict]:
    targets = [Target(f"r{i}", [s.url], constant(rate_rps, duration_s), Length("fixed", _IN), Length("fixed", _OUT))
               for i, s in enumerate(servers)]
    reports = LoadGenerator(targets, seed=seed, drain_s=60).run()
    return [reports[t.name] for t in targets]


def fidelity(duration_s: float, print_line: Callable[[str], None]) -> None:
    """Part (a): emulated vs predicted mean ITL and TTFT at 30/60/90% of capacity."""
    capacity = _predict(0.01)[2]
    print_line(f"emulator fidelity: granite_13b/G2 perfParms, L={_IN} K={_OUT} N={_BATCH}, capacity mu(N) "
               f"{capacity:.2f} req/s, {duration_s:g} s per point (server-side histograms)")
    for share in (0.3, 0.6, 0.9):
        rate = share * capacity
        server = VllmServer(EngineParams(*_PERF, max_num_seqs=_BATCH), "granite_13b").start()
        try:
            client = _drive([server], rate, duration_s, seed=int(share * 100))[0]
        finally:
            server.stop()
        m = server.metrics
        itl, ttft = m.itl.total / max(m.itl.count, 1) * 1000, m.ttft.total / max(m.ttft.count, 1) * 1000
        p_itl, p_ttft, _ = _predict(client["achieved_rps"] or rate)
        print_line(f"  {share:4.0%} load ({rate:.2f} req/s, {client['completed']} req): ITL emulated {itl:7.2f} "
                   f"model {p_itl:7.2f} ms ({itl / p_itl - 1:+.1%})  TTFT emulated {ttft:8.1f} model {p_ttft:8.1f} "
                   f"ms ({ttft / p_ttft - 1:+.1%})")


def cpu_cost(duration_s: float, print_line: Callable[[str], None], steps: tuple[int, ...] = (4, 8, 16, 20, 24)
             ) -> None:
    """Part (b): replicas and req/s carried before the timing error exceeds 5%."""
    rate = 1.6
    print_line(f"emulator CPU cost: replicas at {rate} req/s each (K={_OUT}, N={_BATCH}), {duration_s:g} s per step")
    for count in steps:
        servers = [VllmServer(EngineParams(*_PERF, max_num_seqs=_BATCH), "m").start() for _ in range(count)]
        try:
            reports = _drive(servers, rate, duration_s, seed=count)
        finally:
            for server in servers:
                server.stop()
        late = sum(s.engine.timing.late_s for s in servers) / sum(s.engine.timing.busy_s for s in servers)
        server_itl = sum(s.metrics.itl.total for s in servers) / max(sum(s.metrics.itl.count for s in servers), 1)
        client_itl = sum(r["itl_ms"]["mean"] for r in reports) / len(reports) / 1000
        skew = abs(client_itl / server_itl - 1) if server_itl else 0.0
        done = sum(r["completed"] for r in reports)
        error = max(late, skew)
        print_line(f"  {count:3d} replicas {count * rate:5.1f} req/s ({done / duration_s * _OUT:6.0f} tokens/s): "
                   f"engine lateness {late:6.2%}, client/server ITL skew {skew:6.2%} -> "
                   f"{'ok' if error <= 0.05 else 'over 5%'}")
        if error > 0.05:
            break


def run(print_line: Callable[[str], None] = print, duration_s: float = 60.0, cpu_step_s: float = 20.0) -> None:
    """Both parts; about 3 x duration_s + 5 x cpu_step_s seconds."""
    fidelity(duration_s, print_line)
    cpu_cost(cpu_step_s, print_line)


if __name__ == "__main__":
    run()
