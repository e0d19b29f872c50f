"""The forecaster on synthetic series: a ramp is extrapolated, a step is followed, noise does not scale up."""

from __future__ import annotations

import numpy as np
import pytest

from services.collector import forecast as fc

STEP_S = 60.0
HORIZON_S = 180.0  # start-up 120 s + one 60 s period


def _poisson(rates_rpm: list[float], seed: int) -> list[float]:
    """One-minute rates as measured: Poisson counts of requests per minute."""
    rng = np.random.default_rng(seed)
    return [float(rng.poisson(r)) for r in rates_rpm]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_ramp_is_extrapolated_to_the_horizon(seed: int) -> None:
    truth = [60.0 + 24.0 * i for i in range(15)]  # 60 -> 396 req/min over 14 minutes
    history = _poisson(truth, seed)
    got = fc.forecast(history, STEP_S, HORIZON_S)
    expected = 60.0 + 24.0 * (14 + 3)  # the rate three minutes after the last sample
    assert got.fitted and got.rising
    assert got.point == pytest.approx(expected, rel=0.1)
    assert fc.sizing_rate(got) >= expected * 0.97  # sized for the upper bound, above the current rate
    assert fc.sizing_rate(got) > history[-1] + 40.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_step_is_followed_without_running_away(seed: int) -> None:
    history = _poisson([90.0] * 10 + [270.0] * 2, seed)
    got = fc.forecast(history, STEP_S, HORIZON_S)
    rate = fc.sizing_rate(got)
    assert 0.85 * 270.0 <= rate <= 1.15 * 270.0  # the new level, not the drift fitted across the step


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_step_already_followed_is_not_a_rise_though_a_trend_fits_across_it(seed: int) -> None:
    # the demo's history: the load starts from nothing, holds 90 req/min, triples; three samples at the new level
    rng = np.random.default_rng(seed)
    history = [0.0, 90.0, 90.0, 90.0, 270.0, 270.0, 270.0] + rng.normal(0.0, 5.0, 7)
    got = fc.forecast(np.clip(history, 0.0, None).tolist(), 30.0, 65.0)
    assert got.fitted and not got.rising
    assert fc.sizing_rate(got) == got.current


@pytest.mark.parametrize("seed", range(1, 9))
def test_noise_on_a_flat_load_does_not_scale_up(seed: int) -> None:
    history = _poisson([90.0] * 15, seed)
    got = fc.forecast(history, STEP_S, HORIZON_S)
    assert not got.rising
    assert fc.sizing_rate(got) == history[-1]  # sized as without a forecast: no scale-up from noise alone
    assert got.lower <= 90.0 <= got.upper


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_ramp_is_seen_four_minutes_after_it_starts(seed: int) -> None:
    history = _poisson([144.0] * 8 + [144.0 + 48.0 * i for i in range(1, 5)], seed)
    got = fc.forecast(history, STEP_S, HORIZON_S)
    assert got.rising and fc.sizing_rate(got) >= 144.0 + 48.0 * 6


def test_a_falling_load_is_sized_for_the_current_rate_not_below() -> None:
    history = [400.0 - 20.0 * i for i in range(12)]
    got = fc.forecast(history, STEP_S, HORIZON_S)
    assert got.point < history[-1]
    assert fc.sizing_rate(got) == history[-1]  # pods removed now stop serving now


@pytest.mark.parametrize("history, method", [
    pytest.param([120.0, 130.0, 150.0], fc.METHOD_SHORT, id="short"),
    pytest.param([75.0] * 10, fc.METHOD_FLAT, id="constant"),
    pytest.param([0.0] * 10, fc.METHOD_FLAT, id="idle"),
])
def test_without_a_usable_history_the_current_rate_is_carried(history: list[float], method: str) -> None:
    got = fc.forecast(history, STEP_S, HORIZON_S)
    assert (got.method, got.point, got.lower, got.upper) == (method, history[-1], history[-1], history[-1])
    assert fc.sizing_rate(got) == history[-1] and not got.rising


@pytest.mark.parametrize("args, field", [
    pytest.param(([], 60.0, 180.0), "history", id="empty"),
    pytest.param(([1.0, float("nan")], 60.0, 180.0), "history", id="nan"),
    pytest.param(([1.0, -2.0], 60.0, 180.0), "history", id="negative"),
    pytest.param(([1.0], 0.0, 180.0), "step_s", id="step"),
    pytest.param(([1.0], 60.0, -1.0), "horizon_s", id="horizon"),
])
def test_bad_input_is_refused_naming_the_argument(args: tuple, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        fc.forecast(*args)


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_ramp_is_sized_ahead_within_its_first_two_samples(seed: int) -> None:
    # a ramp of +48 req/min per minute: its fitted trend is significant only 3-4 samples in (one start-up delay
    # late); the level shift is seen at once, and the recent slope is carried to the horizon
    history = _poisson([144.0] * 10 + [144.0 + 48.0 * i for i in (1, 2)], seed)
    first = next((got for got in (fc.forecast(history[:end], STEP_S, HORIZON_S) for end in (11, 12)) if got.rising),
                 None)
    assert first is not None
    assert fc.sizing_rate(first) >= first.current + 48.0  # at least a minute of the rise ahead of the load


def test_a_level_shift_is_a_jump_and_the_samples_after_it_are_not() -> None:
    flat = _poisson([90.0] * 10, 5)
    assert fc.jumped(np.asarray([*flat, 180.0]))
    assert not fc.jumped(np.asarray([*flat, 180.0, 181.0]))  # the step is in the line's history now
    assert not fc.jumped(np.asarray([*flat[:4], 180.0]))  # too few samples before it to tell


@pytest.mark.parametrize("seed", range(1, 9))
def test_noise_on_a_flat_load_is_never_a_jump(seed: int) -> None:
    history = np.asarray(_poisson([90.0] * 25, seed))
    assert not any(fc.jumped(history[:end]) for end in range(6, len(history) + 1))
