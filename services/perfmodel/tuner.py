"""Online tuning of perfParms from the collector's observations, behind a fit-quality gate (docs/model.md s12).

Per (model, accelerator) the tuner keeps the last observation windows of every server running that model on
that accelerator (per-replica arrival rate, tokens, output-length C2, the batch limit, measured mean ITL and
TTFT), refits alpha, beta, gamma by windowed least squares (fit.fit with model v1) on all but the most recent
windows, and checks the estimate on those recent windows, which it has not seen. The estimate is adopted only
when the gate passes: enough windows, spanning enough load, its error on the recent windows below the current
parameters' by a margin, and every parameter inside bounds. Modes (INFERNO_TUNER): ``off`` (nothing kept),
``advisory`` (estimates and gate reported, the optimizer's input never changed) and ``on`` (adopted
parameters replace the data file's for that model and accelerator).

Pure: no clock, no environment; the caller owns the Tuner and feeds it each cycle's system.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.core.errors import InvalidInputError
from services.core.model import LoadSource, PerfParms, ServiceModel, SystemData
from services.perfmodel.fit import BOUNDS, FitOptions, Point, evaluate, fit


class TunerMode(enum.StrEnum):
    """INFERNO_TUNER: off, advisory (report only) or on (adopt what passes the gate)."""

    OFF = "off"
    ADVISORY = "advisory"
    ON = "on"


@dataclass(frozen=True, slots=True)
class GateSettings:
    """The fit-quality gate and the window (docs/model.md s12).

    ``min_samples`` windows at least (including ``recent`` held out for the check); the highest per-replica
    rate at least ``min_load_span`` x the lowest; the estimate's error on the ``recent`` windows at most
    (1 - ``margin``) x the current parameters'; each parameter within BOUNDS and within ``max_factor`` of the
    data file's (alpha, beta; gamma may be 0); ``window`` windows kept per key; a refit every
    ``refit_every`` new windows.
    """

    min_samples: int = 12
    min_load_span: float = 2.0
    recent: int = 4
    margin: float = 0.2
    max_factor: float = 10.0
    window: int = 120
    refit_every: int = 3


@dataclass(frozen=True, slots=True)
class TunerState:
    """What the tuner knows of one (model, accelerator), as reported in the cycle record and metrics.

    ``status``: collecting | refused | advised | adopted (in use, mode on) | failed; ``reason`` says why the
    last estimate was refused or failed (an adopted estimate stays in use when a newer one is refused);
    errors are mean |pred - meas| / mean(meas) of TTFT and ITL averaged, on the recent windows.
    """

    model: str
    accelerator: str
    mode: TunerMode
    samples: int = 0
    load_span: float = 0.0
    status: str = "collecting"
    reason: str = ""
    estimate: PerfParms | None = None
    estimate_error: float | None = None
    current_error: float | None = None
    adopted: PerfParms | None = None

    def as_json(self) -> dict[str, Any]:
        """The state as a JSON-ready dict."""
        def params(p: PerfParms | None) -> dict[str, float] | None:
            return None if p is None else {"alpha": float(p.alpha_ms), "beta": float(p.beta_ms),
                                           "gamma": float(p.gamma_ms)}
        return {"model": self.model, "accelerator": self.accelerator, "mode": self.mode.value,
                "samples": self.samples, "load_span": round(self.load_span, 4), "status": self.status,
                "reason": self.reason, "estimate": params(self.estimate),
                "estimate_error": self.estimate_error, "current_error": self.current_error,
                "adopted": params(self.adopted)}


@dataclass(slots=True)
class _Track:
    points: deque[Point]
    batch: int = 0
    since_fit: int = 0
    state: TunerState | None = None
    adopted: PerfParms | None = None


MEASURED = frozenset({LoadSource.PROMETHEUS.value, LoadSource.DIRECT_SCRAPE.value})
"""Load sources that are measurements (labels and data files are not)."""


def observations(system: SystemData) -> dict[tuple[str, str], list[tuple[Point, int]]]:
    """(model, accelerator) -> [(one window of one server as a fit Point, its batch limit N)].

    Only servers whose load and latencies were measured in the window, with ready replicas and a positive
    rate; the rate is per replica; the output-length C2 is the measured one, else the ``output_c2`` setting.
    """
    found: dict[tuple[str, str], list[tuple[Point, int]]] = {}
    for server in system.servers:
        seen, load, current = server.observed, server.load, server.current
        if (seen is None or seen.source not in MEASURED or seen.itl_ms is None or seen.ttft_ms is None
                or not seen.ready_replicas or load.arrival_rate_rpm <= 0 or not current.accelerator):
            continue
        perf = system.perf(server.model, current.accelerator)
        if perf is None:
            continue
        batch = server.max_batch_size or current.max_batch or perf.max_batch_size
        c2 = load.out_tokens_c2 if load.out_tokens_c2 is not None else system.optimizer.output_c2
        point = Point(load.arrival_rate_rpm / 60.0 / seen.ready_replicas, load.avg_in_tokens,
                      max(load.avg_out_tokens, 1.0), c2, 1.0, seen.ttft_ms, seen.itl_ms)
        found.setdefault((server.model, current.accelerator), []).append((point, max(int(batch), 1)))
    return found


def _error(points: list[Point], perf: PerfParms, options: FitOptions) -> float:
    """Mean of the TTFT and ITL errors (mean |pred - meas| / mean(meas)) of ``perf`` on ``points``."""
    result = evaluate(points, perf, options)
    return (result.ttft_error.ratio_of_means + result.itl_error.ratio_of_means) / 2


def _outside(estimate: PerfParms, reference: PerfParms, factor: float) -> str:
    """"" when ``estimate`` is inside the bounds, else which parameter is not."""
    for name, low, high in zip(("alpha", "beta", "gamma"), BOUNDS[0], BOUNDS[1], strict=False):
        value, ref = getattr(estimate, f"{name}_ms"), getattr(reference, f"{name}_ms")
        if not (math.isfinite(value) and low <= value <= high):
            return f"{name} {value:.6g} outside {low:g}..{high:g}"
        if name != "gamma" and ref > 0 and not ref / factor <= value <= ref * factor:
            return f"{name} {value:.6g} more than {factor:g}x away from the data file's {ref:.6g}"
    return ""


@dataclass
class Tuner:
    """Online perfParms estimates per (model, accelerator); see the module docstring. Not thread-safe."""

    mode: TunerMode = TunerMode.OFF
    gate: GateSettings = field(default_factory=GateSettings)
    _tracks: dict[tuple[str, str], _Track] = field(default_factory=dict)

    def observe(self, system: SystemData) -> list[TunerState]:
        """Add this cycle's windows, refit where due, run the gate; the states of every tracked key.

        ``system``: the optimizer's input of this cycle (its model data are the current parameters).
        """
        if self.mode == TunerMode.OFF:
            return []
        for key, found in observations(system).items():
            track = self._tracks.setdefault(key, _Track(deque(maxlen=self.gate.window)))
            for point, batch in found:
                track.points.append(point)
                track.batch = batch
            track.since_fit += len(found)
        states = []
        for key in sorted(self._tracks):
            perf = system.perf(*key)
            if perf is None:
                continue
            track = self._tracks[key]
            waiting = track.state is None or track.state.status == "collecting"
            if (waiting and track.since_fit) or track.since_fit >= self.gate.refit_every:
                track.state = self._assess(key, track, perf.perf)
                track.since_fit = 0
            states.append(track.state)
        return states

    def _assess(self, key: tuple[str, str], track: _Track, current: PerfParms) -> TunerState:
        gate, points = self.gate, list(track.points)
        rates = [p.rate_rps for p in points]
        span = max(rates) / min(rates) if rates and min(rates) > 0 else 0.0
        base = TunerState(key[0], key[1], self.mode, len(points), span, adopted=track.adopted)
        if len(points) < gate.min_samples:
            return replace(base, reason=f"{len(points)} of {gate.min_samples} windows")
        options = FitOptions(ServiceModel.V1, max_batch=track.batch)
        older, recent = points[:-gate.recent], points[-gate.recent:]
        in_use = track.adopted or current
        server_side = replace(in_use, ttft_overhead_ms=0.0)  # vLLM's TTFT histogram has no client overhead
        try:
            found = fit(older, options, start=server_side, fit_overhead=False).perf
        except (InvalidInputError, ValueError, FloatingPointError) as err:
            return replace(base, status="failed", reason=f"fit failed: {err}")
        fitted = PerfParms(float(found.alpha_ms), float(found.beta_ms), float(found.gamma_ms))
        new_error, old_error = _error(recent, fitted, options), _error(recent, server_side, options)
        estimate = replace(fitted, ttft_overhead_ms=in_use.ttft_overhead_ms)
        state = replace(base, estimate=estimate, estimate_error=round(new_error, 6),
                        current_error=round(old_error, 6))
        refusal = ""
        if span < gate.min_load_span:
            refusal = f"load span {span:.2f}x below {gate.min_load_span:g}x"
        elif not (math.isfinite(new_error) and new_error <= (1 - gate.margin) * old_error):
            refusal = (f"error on the last {gate.recent} windows {new_error:.1%} not {gate.margin:.0%} below the "
                       f"current parameters' {old_error:.1%}")
        else:
            refusal = _outside(estimate, current, gate.max_factor)
        if refusal:
            if track.adopted is not None:  # an earlier estimate stays in use
                return replace(state, status="adopted", reason=f"kept; newer estimate refused: {refusal}")
            return replace(state, status="refused", reason=refusal)
        if self.mode == TunerMode.ON:
            track.adopted = estimate
            return replace(state, status="adopted", adopted=estimate)
        return replace(state, status="advised")

    def apply(self, system: SystemData) -> SystemData:
        """``system`` with adopted parameters in its model data (mode on); unchanged in any other mode."""
        if self.mode != TunerMode.ON:
            return system
        adopted: Mapping[tuple[str, str], PerfParms] = {k: t.adopted for k, t in self._tracks.items()
                                                         if t.adopted is not None}
        if not adopted:
            return system
        models = tuple(replace(p, perf=adopted.get((p.model, p.accelerator), p.perf)) for p in system.models)
        return replace(system, models=models)
