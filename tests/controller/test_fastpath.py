"""The fast path: a cycle now on a saturation burst, not on noise, at most once per cooldown, not for what starts."""

from __future__ import annotations

import numpy as np
import pytest

from services.controller.cyclerow import CycleRow
from services.controller.fastpath import Expected, FastPath, FastPathSettings, Signals, departure, expectations

EXPECTED = {"premium": Expected(arrival_rate_rpm=90.0, ttft_ms=250.0, slo_ttft_ms=1000.0)}  # 0.4 waiting


def _watch(path: FastPath, now_s: float, **signals) -> str:
    defaults = {"requests_waiting": 0.5, "kv_cache_usage": 0.3, "ttft_ms": 260.0, "ready_replicas": 1,
                "spec_replicas": 1}
    return path.check(now_s, {"premium": Signals(**{**defaults, **signals})}, EXPECTED)


def test_a_saturation_burst_runs_a_cycle_now_and_says_why() -> None:
    path = FastPath(FastPathSettings())
    assert _watch(path, 10.0) == ""
    why = _watch(path, 20.0, requests_waiting=12.0, ttft_ms=3000.0)
    assert why.startswith("premium: 12.0 requests waiting on 1 Ready replicas (model expected 0.4)")


@pytest.mark.parametrize("signals, word", [
    pytest.param({"kv_cache_usage": 0.95}, "KV cache 95% full", id="kv"),
    pytest.param({"ttft_ms": 1800.0}, "TTFT 1800 ms above the SLO 1000 ms", id="ttft"),
])
def test_kv_cache_or_ttft_beyond_the_prediction_also_fire(signals: dict, word: str) -> None:
    assert word in _watch(FastPath(FastPathSettings()), 10.0, **signals)


def test_noise_around_the_prediction_never_fires() -> None:
    rng = np.random.default_rng(7)
    path = FastPath(FastPathSettings())
    for k in range(360):  # an hour of watches every 10 s on a healthy server: Poisson queue, jittery TTFT
        fired = _watch(path, 10.0 * k, requests_waiting=float(rng.poisson(0.4)), ttft_ms=float(rng.gamma(4, 65)),
                       kv_cache_usage=float(rng.uniform(0.1, 0.6)))
        assert fired == ""


def test_a_lasting_burst_fires_at_most_once_per_cooldown() -> None:
    path = FastPath(FastPathSettings(cooldown_s=60.0))
    fired = [t for t in range(0, 300, 10) if _watch(path, float(t), requests_waiting=30.0)]
    assert fired == [0, 60, 120, 180, 240]


def test_no_cycle_while_the_replicas_asked_for_are_still_starting() -> None:
    path = FastPath(FastPathSettings())
    assert _watch(path, 0.0, requests_waiting=30.0, ready_replicas=1, spec_replicas=2) == ""
    assert _watch(path, 10.0, requests_waiting=30.0, ready_replicas=2, spec_replicas=2) != ""


def test_the_threshold_scales_with_ready_replicas_and_the_models_queue() -> None:
    settings = FastPathSettings(waiting_per_replica=8.0, ratio=2.0)
    assert departure(Signals(requests_waiting=20.0, ready_replicas=3), None, settings) == ""
    assert departure(Signals(requests_waiting=25.0, ready_replicas=3), None, settings) != ""
    busy = Expected(arrival_rate_rpm=3000.0, ttft_ms=400.0)  # the model itself expects 20 waiting
    assert departure(Signals(requests_waiting=30.0, ready_replicas=1), busy, settings) == ""


def test_expectations_come_from_the_cycle_rows_with_a_prediction() -> None:
    rows = [CycleRow("a", arrival_rate_rpm=60.0, predicted_ttft_ms=200.0, slo_ttft_ms=500.0),
            CycleRow("b", arrival_rate_rpm=60.0)]
    assert expectations(rows) == {"a": Expected(60.0, 200.0, 500.0)}


def test_settings_refuse_a_negative_threshold_naming_it() -> None:
    with pytest.raises(ValueError, match="cooldown_s"):
        FastPathSettings(cooldown_s=-1.0)
