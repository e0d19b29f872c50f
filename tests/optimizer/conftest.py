"""Fixtures for the optimizer tests: the Inferno sample systems and a builder for tiny systems."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from services.core.datafiles import load_system_dir
from services.core.model import (
    Accelerator,
    Allocation,
    Capacity,
    Load,
    ModelPerf,
    ModelTarget,
    OptimizerSettings,
    PerfParms,
    Server,
    ServiceClass,
    ServiceModel,
    SystemData,
)

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "inferno")
GRANITE_G2 = PerfParms(alpha_ms=17.15, beta_ms=0.034, gamma_ms=0.0010625)


@pytest.fixture(scope="session")
def small_system() -> SystemData:
    return load_system_dir(os.path.join(SAMPLES, "small")).system


@pytest.fixture(scope="session")
def large_system() -> SystemData:
    return load_system_dir(os.path.join(SAMPLES, "large")).system


def tiny_system(servers: list[Server], capacity: dict[str, int] | None = None,
                settings: OptimizerSettings | None = None, ttft_ms: float = 2000.0, itl_ms: float = 80.0,
                tps: float = 0.0) -> SystemData:
    """Two accelerator kinds (G2 at 23/h, cheaper-but-slower L4 at 6/h, 2xL4 packing two L4 cards) serving
    model ``m``, classes High (priority 1) and Low (priority 2) with the same targets. Without ``settings``
    the service-time model is v0.3 (the figures the tests quote), whichever solver runs."""
    accelerators = (Accelerator("G2", "G2", 1, cost_per_hour=23.0), Accelerator("L4", "L4", 1, cost_per_hour=6.0),
                    Accelerator("2xL4", "L4", 2, cost_per_hour=12.0))
    models = (ModelPerf("m", "G2", 1, 76, 512, GRANITE_G2),
              ModelPerf("m", "L4", 1, 16, 512, PerfParms(40.0, 0.1, 0.004)),
              ModelPerf("m", "2xL4", 1, 32, 512, PerfParms(30.0, 0.07, 0.003)))
    target = ModelTarget("m", slo_itl_ms=itl_ms, slo_ttft_ms=ttft_ms, slo_tps=tps)
    classes = (ServiceClass("High", 1, (target,)), ServiceClass("Low", 2, (target,)),
               ServiceClass("Free", 100, (target,)))
    return SystemData(accelerators, models, classes, tuple(servers),
                      settings or OptimizerSettings(service_model=ServiceModel.V03),
                      Capacity(capacity if capacity is not None else {"G2": 1000, "L4": 1000}))


def server(name: str, rpm: float = 120.0, cls: str = "High", in_tokens: float = 128.0, out_tokens: float = 1024.0,
           **fields: object) -> Server:
    """A server of model ``m`` with load ``rpm`` requests/min; extra fields go to the Server."""
    current = fields.pop("current", Allocation())
    assert isinstance(current, Allocation)
    return Server(name=name, service_class=cls, model="m",
                  current=replace(current, load=Load(rpm, in_tokens, out_tokens)), **fields)  # type: ignore[arg-type]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def sample_data() -> str:
    """The repository's samples/ (vllm-sweeps/ holds the real GuideLLM sweeps)."""
    return os.path.join(REPO, "samples")


def v03(system: SystemData) -> SystemData:
    """``system`` sized with Inferno's v0.3 service-time model whatever the solver (the figures of issue 16 /
    docs/model.md s9 compare both solvers on the same candidates)."""
    return replace(system, optimizer=replace(system.optimizer, service_model=ServiceModel.V03))
