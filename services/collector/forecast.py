"""Per-server load forecast: the arrival rate when replicas requested now are Ready, from the recent history.

Pure (no clock, env or I/O; tests/test_layering.py): the caller passes the history, evenly spaced samples of
the measured arrival rate (req/min) ending now, the spacing and the horizon (the pods' start-up delay plus one
control period: a replica requested now serves from now + start-up until the next cycle's replicas are Ready).

Model: statsmodels' UnobservedComponents "local linear deterministic trend" (a random-walk level with a drift,
fitted by maximum likelihood with the Kalman filter; Harvey, "Forecasting, structural time series models and the
Kalman filter", 1989, s2.3), forecast ``horizon / spacing`` steps ahead with a ``coverage`` prediction interval
(docs/contract.md s9). The interval widens with the residual noise, so noise alone does not look like a rise.

The rate to size (``sizing_rate``): the upper bound for scale-up, never less than the current rate:
- rising (the fitted trend is positive beyond RISE_Z standard errors, the point forecast is above the
  current rate and the last RECENT samples still climb at RECENT_SHARE of that trend or more; or the current
  sample is a level shift upwards, ``jumped``): the upper bound, so the replicas that start now are enough
  when they are Ready even if the rise runs a little steeper. At a level shift the upper bound is raised to
  the last RECENT samples' slope carried to the horizon when that is higher: the first samples of a rise
  leave the fitted trend small, and a step cannot yet be told from a ramp;
- otherwise the current rate: a noisy flat load sizes as without a forecast, a step already seen is followed
  without the overshoot a trend fitted across the step would add (its drift stays positive for as long as the
  step is in the history), and a falling forecast never removes capacity the current load still needs (a
  removed pod stops serving at once).
Scale-down follows the point forecast: the actuator's stabilization window remembers the count for the point
(services/actuator/plan.py point_replicas), not for the upper bound sized here.
Too short a history (fewer than ``min_points`` samples), a flat-zero one or a fit that fails fall back to the
current rate, with ``method`` saying so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.core import model as m

MIN_POINTS = 6
"""Samples needed before a trend is fitted (six 1-minute rates); fewer -> the current rate."""
COVERAGE = 0.8
"""Two-sided coverage of the prediction interval: the upper bound is the 90th percentile."""
RISE_Z = 1.645
"""A trend counts as a rise when its estimate exceeds this many standard errors (one-sided 95%)."""
RECENT = 3
RECENT_SHARE = 0.5
"""A rise must go on: the slope of the last RECENT samples (current included; least squares) must be at least
RECENT_SHARE x the fitted trend. A level shift (a step, a load starting from zero) drags a trend fitted across
it upwards for as long as it stays in the history, while the samples after it are flat: without this, a step
already followed was sized again for a rise that had ended."""
JUMP_ALPHA = 0.01
"""A level shift: the current sample lies above the (1 - JUMP_ALPHA) two-sided prediction interval of a straight
line fitted (ordinary least squares) to the JUMP_POINTS samples before it, i.e. beyond its 99.5th percentile.
It catches the first samples of a rise, before the fitted trend is significant (a ramp's trend passes RISE_Z
only three or four samples in, one start-up delay late): noise stays inside the interval."""
JUMP_POINTS = 10
METHOD_TREND = "local-linear-trend"
METHOD_SHORT = "current (history short)"
METHOD_FLAT = "current (history constant)"
METHOD_FAILED = "current (fit failed)"


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast of one series ``horizon_s`` ahead of its last sample: the point, the prediction interval
    [lower, upper] (same unit as the series; never negative; at a level shift ``upper`` is raised to the recent
    slope's extrapolation, module docstring), the current value (the last sample), how it was made
    (``method``, one of the METHOD_* strings) and whether the series is rising."""

    current: float
    point: float
    lower: float
    upper: float
    horizon_s: float
    method: str
    rising: bool = False
    """The fitted trend is significantly positive (one-sided test at RISE_Z), the point is above the current
    value and the last samples still climb, or the current value is a level shift upwards (``jumped``): a rise,
    not noise and not a step already taken."""

    @property
    def fitted(self) -> bool:
        """True when a trend model was fitted (False: the current value was carried)."""
        return self.method == METHOD_TREND


def carried(current: float, horizon_s: float, method: str = METHOD_SHORT) -> Forecast:
    """The fallback forecast: the current value, with an empty interval."""
    return Forecast(current, current, current, current, horizon_s, method)


def _check(values: Sequence[float], step_s: float, horizon_s: float, coverage: float) -> None:
    if not values:
        raise ValueError("history: needs at least one sample")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"history: samples must be finite and non-negative, got {list(values)[:10]}")
    if not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"step_s: must be a positive number of seconds, got {step_s!r}")
    if not (math.isfinite(horizon_s) and horizon_s >= 0):
        raise ValueError(f"horizon_s: must be a non-negative number of seconds, got {horizon_s!r}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage: must lie in (0, 1), got {coverage!r}")


def forecast(values: Sequence[float], step_s: float, horizon_s: float, *, coverage: float = COVERAGE,
             min_points: int = MIN_POINTS) -> Forecast:
    """Forecast the series ``values`` (oldest first, one sample every ``step_s`` seconds, the last one now)
    ``horizon_s`` seconds ahead, with a ``coverage`` prediction interval.

    Raises ValueError naming the argument for an empty history, a negative or non-finite sample, a
    non-positive step, a negative horizon or a coverage outside (0, 1). Never raises for a series that cannot
    be fitted: the current value is carried (see the module docstring).
    """
    _check(values, step_s, horizon_s, coverage)
    series = np.asarray(values, dtype=float)
    current = float(series[-1])
    if len(series) < max(min_points, 3):
        return carried(current, horizon_s)
    if float(np.ptp(series)) <= 1e-9 * max(abs(current), 1.0):
        return carried(current, horizon_s, METHOD_FLAT)
    steps = max(int(math.ceil(horizon_s / step_s - 1e-9)), 1)
    try:
        point, lower, upper, t_value, trend = _trend_forecast(series, steps, coverage)
    except (ValueError, np.linalg.LinAlgError, OverflowError):
        return carried(current, horizon_s, METHOD_FAILED)
    if not all(math.isfinite(v) for v in (point, lower, upper)):
        return carried(current, horizon_s, METHOD_FAILED)
    recent = series[-RECENT:]
    recent_slope = float(np.polyfit(np.arange(len(recent)), recent, 1)[0])
    jump = jumped(series)
    rising = (t_value > RISE_Z and point > current and recent_slope >= RECENT_SHARE * trend) or jump
    if jump:
        upper = max(upper, current + recent_slope * steps)
    return Forecast(current, max(point, 0.0), max(lower, 0.0), max(upper, 0.0), horizon_s, METHOD_TREND, rising)


def jumped(series: np.ndarray) -> bool:
    """True when the last sample of ``series`` (oldest first) is a level shift upwards: above the upper end of
    the JUMP_ALPHA prediction interval of an OLS line through the JUMP_POINTS samples before it (statsmodels;
    needs at least MIN_POINTS - 1 of them, and some spread among them)."""
    import statsmodels.api as sm

    before = series[-JUMP_POINTS - 1:-1]
    if len(before) < MIN_POINTS - 1 or float(np.ptp(before)) <= 1e-9 * max(float(np.max(before)), 1.0):
        return False
    steps = np.arange(len(before), dtype=float)
    fitted = sm.OLS(before, sm.add_constant(steps)).fit()
    interval = fitted.get_prediction(np.array([[1.0, float(len(before))]])).conf_int(obs=True, alpha=JUMP_ALPHA)
    upper = float(interval[0, 1])
    return math.isfinite(upper) and float(series[-1]) > upper


def _trend_forecast(series: np.ndarray, steps: int,
                    coverage: float) -> tuple[float, float, float, float, float]:
    """(point, lower, upper, trend / its standard error, trend per sample) ``steps`` ahead from a local linear
    deterministic trend fitted by MLE (the trend's filtered estimate at the last sample). The series is scaled
    to unit mean for the optimizer (rates in req/min span 0.1 .. 10^4) and scaled back."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    scale = float(np.mean(series)) or 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short series; a bad fit is caught below
        fitted = UnobservedComponents(series / scale, level="local linear deterministic trend").fit(disp=False)
        predicted = fitted.get_forecast(steps)
        mean = float(np.asarray(predicted.predicted_mean)[-1])
        interval = np.asarray(predicted.conf_int(alpha=1.0 - coverage))[-1]
        trend, variance = float(fitted.filtered_state[1, -1]), float(fitted.filtered_state_cov[1, 1, -1])
    t_value = trend / math.sqrt(variance) if variance > 0 else (math.inf if trend > 0 else 0.0)
    return mean * scale, float(interval[0]) * scale, float(interval[1]) * scale, t_value, trend * scale


def sizing_rate(fc: Forecast) -> float:
    """The rate to size replicas for: the upper bound (never below the current value) when the forecast is
    rising, else the current value (module docstring)."""
    return m.forecast_sizing_rpm(fc.current, fc.upper, fc.rising)


def arrival_rpm(completions_rpm: float, growth_rpm: float | None) -> float:
    """The arrival rate: completions plus the growth of the requests in the pods (running + waiting; flow
    conservation). A saturated server completes less than it is offered, a draining backlog more; both are
    corrected. Never negative."""
    return max(completions_rpm + (growth_rpm or 0.0), 0.0)


def apply(managed: m.ManagedServer, fc: Forecast, backlog: float = 0.0) -> m.ManagedServer:
    """``managed`` sized for ``sizing_rate(fc)`` plus ``backlog`` req/min (its load's arrival rate), the
    forecast in its observed metrics (measured_rate_rpm = the forecast's current value)."""
    server = managed.server
    observed = server.observed or m.ObservedMetrics()
    observed = replace(observed, measured_rate_rpm=fc.current, forecast_rpm=fc.point, forecast_lower_rpm=fc.lower,
                       forecast_upper_rpm=fc.upper, forecast_horizon_s=fc.horizon_s, forecast_method=fc.method,
                       forecast_rising=fc.rising)
    load = replace(server.load, arrival_rate_rpm=sizing_rate(fc) + backlog)
    server = replace(server, current=replace(server.current, load=load), observed=observed)
    return replace(managed, server=server)


def backlog_rpm(observed: m.ObservedMetrics | None, drain_s: float) -> float:
    """The extra rate that serves the requests waiting now within ``drain_s`` seconds (req/min)."""
    waiting = observed.requests_waiting if observed is not None else None
    if not waiting or drain_s <= 0:
        return 0.0
    return waiting * 60.0 / drain_s


def forecast_server(managed: m.ManagedServer, history_rpm: Sequence[float], step_s: float,
                    horizon_s: float, drain_s: float = 0.0) -> m.ManagedServer:
    """``managed`` with its load forecast from ``history_rpm`` (arrival rates, arrival_rpm, one every
    ``step_s``, oldest first, ending before now): the current rate (its load's, corrected by arrival_rpm) closes
    the series, and the requests waiting now are added as a rate that serves them within ``drain_s`` (0 = not)
    unless replicas requested earlier are still starting: they are the capacity on the way for that backlog, so
    it is not asked for twice. A load that was not measured (from the labels) is left as it is."""
    if not managed.load_measured or (managed.server.observed and
                                     managed.server.observed.source == m.LoadSource.LABELS):
        return managed
    observed = managed.server.observed
    now = arrival_rpm(managed.server.load.arrival_rate_rpm, observed.in_system_growth_rpm if observed else None)
    starting = managed.spec_replicas > managed.ready_replicas  # capacity on the way: not asked for again
    backlog = 0.0 if starting else backlog_rpm(observed, drain_s)
    return apply(managed, forecast([*history_rpm, now], step_s, horizon_s), backlog)


def startup_delay_s(durations_s: Sequence[float | None], default_s: float) -> float:
    """The start-up delay of a server's pods: the median of their creation -> Ready times (seconds), or
    ``default_s`` (INFERNO_STARTUP_DELAY) when no pod has one."""
    known = sorted(d for d in durations_s if d is not None and math.isfinite(d) and d >= 0)
    if not known:
        return default_s
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2.0


def sum_series(series: Sequence[Mapping[float, float]], before_s: float) -> list[float]:
    """Pods' series ({t: value}) summed per time, oldest first, for the times before ``before_s`` (the
    current value is measured apart); a time where no pod has a value is left out."""
    times = sorted({t for one in series for t in one if t < before_s})
    return [sum(one.get(t, 0.0) for one in series) for t in times]
