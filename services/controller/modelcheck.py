"""Model against reality, every cycle: does what the model predicts for a server as it runs now match what
the server shows?

Per server with both a measured ITL/TTFT (from its vLLM metrics, not the load labels) and the optimizer's
prediction at its current allocation and load (services/optimizer/current.py), the ratio observed / predicted
of each latency. They disagree when a ratio is above ``tolerance`` or below 1 / ``tolerance`` and the two
differ by more than a floor: 10 ms ITL, 50 ms TTFT, or a twentieth of the server's SLO for that latency when that
is more (tiny latencies disagree by large ratios for no practical reason, and a gap far inside the SLO does
not change a decision). After ``cycles`` disagreeing cycles in a row the server gets a warning (in the cycle
record and its row, the metric ``inferno_server_model_mismatch``) and, on the cycle it starts, a Warning
Event ``ModelMismatch`` on its Deployment; one agreeing cycle clears it; a cycle without figures changes nothing.
The check advises, it does not block: the allocation is still applied (the actuator's own limits, such as
the pod's --max-num-seqs, still hold). Pure: the counts live in the ModelChecker the loop keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.core import model as m

TOLERANCE = 2.0
"""Largest factor between observed and predicted latency still counted as agreement."""
CYCLES = 3
"""Disagreeing cycles in a row before the warning."""
FLOOR_MS = {"itl": 10.0, "ttft": 50.0}
"""Differences below these (ms) never count as disagreement."""
SLO_SHARE = 0.05
"""Nor differences below this share of the server's SLO for the latency."""


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """One server's check this cycle: observed / predicted ratios (None without figures), the disagreeing
    cycles in a row, the prediction it was checked against, and the warning (empty when none)."""

    server: str
    itl_ratio: float | None
    ttft_ratio: float | None
    disagreeing_cycles: int
    prediction: m.Prediction
    warning: str = ""
    starts: bool = False

    @property
    def mismatch(self) -> bool:
        """True while the warning stands."""
        return bool(self.warning)


def _ratio(observed: float | None, predicted: float, kind: str, slo_ms: float, tolerance: float
           ) -> tuple[float | None, bool]:
    if observed is None or observed <= 0 or predicted <= 0:
        return None, False
    ratio = observed / predicted
    floor = max(FLOOR_MS[kind], SLO_SHARE * slo_ms)
    off = (ratio > tolerance or ratio < 1 / tolerance) and abs(observed - predicted) > floor
    return ratio, off


class ModelChecker:
    """Counts disagreeing cycles per server across cycles (``tolerance`` factor, ``cycles`` in a row)."""

    def __init__(self, tolerance: float = TOLERANCE, cycles: int = CYCLES) -> None:
        self.tolerance, self.cycles = tolerance, max(cycles, 1)
        self._count: dict[str, int] = {}

    def check(self, servers: Iterable[m.Server], predictions: Mapping[str, m.Prediction],
              targets: Mapping[str, m.ModelTarget | None] | None = None) -> dict[str, ModelCheck]:
        """This cycle's checks, by server name, for servers with a prediction (``targets``: each server's SLO
        targets, for the floor); forgets servers not seen."""
        checks = {}
        seen = set()
        for server in servers:
            seen.add(server.name)
            prediction, observed = predictions.get(server.name), server.observed
            if prediction is None:
                continue
            measured = observed is not None and observed.source != m.LoadSource.LABELS
            target = (targets or {}).get(server.name)
            itl, itl_off = _ratio(observed.itl_ms if measured else None, prediction.itl_ms, "itl",
                                  target.slo_itl_ms if target else 0.0, self.tolerance)
            ttft, ttft_off = _ratio(observed.ttft_ms if measured else None, prediction.ttft_ms, "ttft",
                                    target.slo_ttft_ms if target else 0.0, self.tolerance)
            count = self._count.get(server.name, 0)
            if itl_off or ttft_off:
                count += 1
            elif itl is not None or ttft is not None:
                count = 0
            self._count[server.name] = count
            warning = _warning(server, prediction, count) if count >= self.cycles else ""
            checks[server.name] = ModelCheck(server.name, itl, ttft, count, prediction, warning,
                                             starts=count == self.cycles and bool(itl_off or ttft_off))
        for name in set(self._count) - seen:
            del self._count[name]
        return checks


def _warning(server: m.Server, p: m.Prediction, cycles: int) -> str:
    observed = server.observed or m.ObservedMetrics()
    return (f"{server.name}: the model disagrees with what the server shows, {cycles} cycles in a row: "
            f"TTFT observed {observed.ttft_ms or 0:,.0f} ms vs predicted {p.ttft_ms:,.0f} ms, ITL observed "
            f"{observed.itl_ms or 0:,.1f} ms vs predicted {p.itl_ms:,.1f} ms, at "
            f"{server.load.arrival_rate_rpm:,.1f} req/min on {p.num_replicas} x {p.accelerator} with batch "
            f"{p.max_batch}{_queue(observed)}; the model data (perfParms, batch size) does not describe this "
            "server, so the decisions made for it are not to be trusted")


def _queue(observed: m.ObservedMetrics) -> str:
    """', observed running R and waiting W requests' when measured: a batch far below the model's, with
    requests waiting, shows the pods run a smaller --max-num-seqs than the model assumes."""
    if observed.requests_running is None or observed.requests_waiting is None:
        return ""
    return (f" (the server runs {observed.requests_running:,.1f} requests with {observed.requests_waiting:,.1f} "
            "waiting)")


def notices(checks: Mapping[str, ModelCheck]) -> list[m.Notice]:
    """A Warning ModelMismatch Event for each server whose warning starts this cycle."""
    return [m.Notice(c.server, "Warning", "ModelMismatch", c.warning) for c in checks.values() if c.starts]


def row_fields(check: ModelCheck | None) -> dict[str, object]:
    """A cycle row's model-check columns (services.controller.cyclerow.CycleRow fields)."""
    if check is None:
        return {}
    return {"current_predicted_itl_ms": check.prediction.itl_ms, "current_predicted_ttft_ms": check.prediction.ttft_ms,
            "model_itl_ratio": check.itl_ratio, "model_ttft_ratio": check.ttft_ratio,
            "model_disagreeing_cycles": check.disagreeing_cycles, "model_mismatch": check.mismatch}
