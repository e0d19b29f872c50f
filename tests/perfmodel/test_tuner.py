"""Online tuning (docs/model.md s12): the estimate, the gate, and the modes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.core.model import (
    Accelerator,
    Allocation,
    Capacity,
    Load,
    ModelPerf,
    ModelTarget,
    ObservedMetrics,
    PerfParms,
    Server,
    ServiceClass,
    ServiceModel,
    SystemData,
)
from services.optimizer.solver import solve
from services.perfmodel.fit import FitOptions, Point, predict
from services.perfmodel.tuner import GateSettings, Tuner, TunerMode

TRUE = PerfParms(6.6, 0.02, 5e-5)
"""What the 'engine' really does."""
FILE = PerfParms(9.0, 0.03, 8e-5)
"""What the data file says (stale)."""
BATCH, IN, OUT = 256, 1024, 512


def system(perf: PerfParms, rate_rps: float = 0.0, replicas: int = 2, source: str = "prometheus") -> SystemData:
    """One server of model llama on one H100 accelerator; observed latencies are the TRUE model's at the rate."""
    per_replica = rate_rps / replicas
    ttft, itl = predict([Point(per_replica, IN, OUT, 1.0, 1.0, 0.0, 0.0)], TRUE, FitOptions(max_batch=BATCH))
    observed = ObservedMetrics(itl_ms=float(itl[0]), ttft_ms=float(ttft[0]), ready_replicas=replicas, source=source)
    server = Server("premium-llama", "Premium", "llama", max_batch_size=BATCH,
                    current=Allocation("H100", replicas, BATCH, 20.0, load=Load(rate_rps * 60, IN, OUT, 1.0)),
                    observed=observed)
    return SystemData(accelerators=(Accelerator("H100", "H100", cost_per_hour=10.0),),
                      models=(ModelPerf("llama", "H100", 1, BATCH, OUT, perf),),
                      service_classes=(ServiceClass("Premium", 1, (ModelTarget("llama", 50.0, 500.0),)),),
                      servers=(server,), capacity=Capacity({"H100": 8}))


def feed(tuner: Tuner, rates: list[float], perf: PerfParms = FILE) -> list:
    states = []
    for rate in rates:
        states = tuner.observe(system(perf, rate))
    return states


WIDE = [2.0, 8.0, 4.0, 14.0, 6.0, 10.0, 3.0, 12.0, 5.0, 9.0, 7.0, 11.0, 4.5, 13.0, 2.5, 8.5]
"""Per-server rates (req/s, two replicas) spanning 2..14: a 7x load span."""


def test_on_mode_adopts_an_estimate_that_passes_the_gate() -> None:
    tuner = Tuner(TunerMode.ON, GateSettings(refit_every=1))
    states = feed(tuner, WIDE)
    state = states[0]
    assert (state.model, state.accelerator, state.status) == ("llama", "H100", "adopted"), state.reason
    est = state.estimate
    assert (est.alpha_ms, est.beta_ms, est.gamma_ms) == pytest.approx((6.6, 0.02, 5e-5), rel=0.02)
    assert state.adopted is not None and state.estimate_error < 0.01
    applied = tuner.apply(system(FILE, 4.0))
    assert applied.perf("llama", "H100").perf == state.adopted


def test_the_first_estimate_that_passes_is_adopted_over_the_data_file() -> None:
    tuner = Tuner(TunerMode.ON, GateSettings(refit_every=100))  # one assessment, at the first windows
    state = feed(tuner, WIDE[:12])[0]
    assert state.status == "adopted" and state.reason == ""
    assert state.estimate_error < 0.01 < state.current_error  # against the data file's parameters


def test_gate_refuses_a_fit_on_too_narrow_a_load_range() -> None:
    tuner = Tuner(TunerMode.ON, GateSettings(refit_every=1))
    state = feed(tuner, [6.0, 6.3, 6.6, 6.1, 6.4, 6.2, 6.5, 6.05, 6.35, 6.15, 6.45, 6.25, 6.55, 6.3])[0]
    assert state.status == "refused" and state.reason.startswith("load span 1.1")
    assert state.estimate is not None  # estimated and reported, not adopted
    assert tuner.apply(system(FILE, 6.0)) == system(FILE, 6.0)


def test_gate_refuses_an_estimate_no_better_than_the_current_parameters() -> None:
    state = feed(Tuner(TunerMode.ON, GateSettings(refit_every=1)), WIDE, perf=TRUE)[0]
    assert state.status == "refused" and "not 20% below" in state.reason


def test_gate_refuses_parameters_out_of_bounds() -> None:
    far = PerfParms(60.0, 0.2, 5e-4)  # the data file is 10x off: the estimate is too far from it to trust
    state = feed(Tuner(TunerMode.ON, GateSettings(refit_every=1, max_factor=5.0)), WIDE, perf=far)[0]
    assert state.status == "refused" and "away from the data file" in state.reason


def test_too_few_windows_is_still_collecting() -> None:
    state = feed(Tuner(TunerMode.ON), WIDE[:5])[0]
    assert (state.status, state.samples, state.estimate) == ("collecting", 5, None)


def test_unmeasured_load_is_not_an_observation() -> None:
    tuner = Tuner(TunerMode.ON)
    for rate in WIDE:
        assert tuner.observe(system(FILE, rate, source="labels")) == []


def test_advisory_mode_reports_but_never_changes_a_decision() -> None:
    tuner = Tuner(TunerMode.ADVISORY, GateSettings(refit_every=1))
    state = feed(tuner, WIDE)[0]
    assert state.status == "advised" and state.adopted is None and state.estimate is not None
    current = system(FILE, 12.0)
    assert tuner.apply(current) is current
    on = Tuner(TunerMode.ON, GateSettings(refit_every=1))
    feed(on, WIDE)
    # the same windows adopted would change the decision: advisory is what keeps it unchanged
    assert solve(on.apply(current)).solution != solve(tuner.apply(current)).solution
    assert solve(tuner.apply(current)).solution == solve(current).solution


def test_off_keeps_nothing() -> None:
    tuner = Tuner(TunerMode.OFF)
    assert feed(tuner, WIDE) == [] and tuner.apply(system(FILE, 4.0)) == system(FILE, 4.0)


def test_state_as_json() -> None:
    state = feed(Tuner(TunerMode.ADVISORY, GateSettings(refit_every=1)), WIDE)[0]
    data = state.as_json()
    assert data["mode"] == "advisory" and data["status"] == "advised" and data["samples"] == len(WIDE)
    assert set(data["estimate"]) == {"alpha", "beta", "gamma"} and data["adopted"] is None
    assert replace(state, estimate=None).as_json()["estimate"] is None
    assert ServiceModel.V1.value == "v1"


def test_the_client_ttft_overhead_of_the_data_file_is_kept_out_of_the_server_side_fit() -> None:
    with_overhead = PerfParms(FILE.alpha_ms, FILE.beta_ms, FILE.gamma_ms, ttft_overhead_ms=8.0)
    state = feed(Tuner(TunerMode.ON, GateSettings(refit_every=100)), WIDE[:12], perf=with_overhead)[0]
    assert state.status == "adopted"
    assert (state.adopted.alpha_ms, state.adopted.ttft_overhead_ms) == (pytest.approx(6.6, rel=0.02), 8.0)
