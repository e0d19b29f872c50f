"""What the model predicts for a server as it runs now, and the model-vs-reality check against emulated
replicas: manifests/base/data (batch 608 by its rule for pods running --max-num-seqs 2) under the issue's
overload gives a clear warning; the demo's calibrated data at its base load gives none."""

from __future__ import annotations

import pytest

from emulator.loadgen import LoadGenerator, Target
from emulator.loadshape import Length, constant
from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams
from harness.scenario import Scenario, static_system
from services.controller.modelcheck import CYCLES, ModelChecker
from services.core import model as m
from services.core.datafiles import load_system_dir
from services.optimizer.current import predict_current
from tests.manifests.conftest import BASE

PERF = (17.15, 0.034, 0.0010625)  # granite_13b on G2, as manifests/base/data and the sample set give it
IN, OUT = 128, 64


def server(rps: float, observed: m.ObservedMetrics | None = None) -> m.Server:
    load = m.Load(rps * 60, IN, OUT, out_tokens_c2=0.0)  # fixed lengths, as the collector measures them
    return m.Server("Bronze-granite_13b", "Bronze", "granite_13b",
                    current=m.Allocation("G2", 1, max_batch=2, load=load), observed=observed)


def test_the_prediction_uses_the_current_replicas_accelerator_and_the_batch_the_model_sizes_with() -> None:
    data = load_system_dir(str(BASE / "data"), require_servers=False).system
    one, two = (predict_current(m.SystemData(**{**_fields(data), "servers": (
        m.Server("s", "Bronze", "granite_13b", current=m.Allocation("G2", n, load=m.Load(120, IN, OUT))),)}))["s"]
        for n in (1, 2))
    assert (one.accelerator, one.num_replicas, one.max_batch) == ("G2", 1, 608)  # 76 x 512 // 64
    assert two.num_replicas == 2 and two.ttft_ms <= one.ttft_ms
    system = m.SystemData(**{**_fields(data), "servers": (
        m.Server("s", "Bronze", "granite_13b", current=m.Allocation("G2", 1, load=m.Load(120, IN, OUT))),)})
    assert predict_current(system, {"s": m.Allocation("G2", 2, max_batch=3)})["s"].max_batch == 3, "as decided"
    assert predict_current(system, {"s": m.Allocation("A100", 2, max_batch=3)})["s"].max_batch == 608


def test_servers_without_a_current_allocation_or_load_get_no_prediction() -> None:
    data = load_system_dir(str(BASE / "data"), require_servers=False).system
    idle = m.Server("idle", "Bronze", "granite_13b", current=m.Allocation("G2", 1, load=m.Load(0, IN, OUT)))
    nowhere = m.Server("nowhere", "Bronze", "granite_13b", current=m.Allocation("", 0, load=m.Load(60, IN, OUT)))
    assert predict_current(m.SystemData(**{**_fields(data), "servers": (idle, nowhere)})) == {}


def _fields(system: m.SystemData) -> dict:
    return {f: getattr(system, f) for f in system.__slots__}


def observe(rps: float, seconds: float, max_num_seqs: int = 2) -> m.ObservedMetrics:
    """Mean ITL/TTFT (server-side histograms, as the collector reads them) of an emulated replica."""
    replica = VllmServer(EngineParams(*PERF, max_num_seqs=max_num_seqs), "granite_13b").start()
    try:
        target = Target("r", [replica.url], constant(rps, seconds), Length("fixed", IN), Length("fixed", OUT))
        LoadGenerator([target], seed=7, drain_s=1).run()
    finally:
        replica.stop()
    metrics = replica.metrics
    return m.ObservedMetrics(itl_ms=metrics.itl.total / metrics.itl.count * 1000,
                             ttft_ms=metrics.ttft.total / metrics.ttft.count * 1000, source="prometheus")


def checks(system: m.SystemData, observed_server: m.Server):
    checker = ModelChecker()
    system = m.SystemData(**{**_fields(system), "servers": (observed_server,)})
    predictions = predict_current(system)
    target = system.service_class(observed_server.service_class).target_for(observed_server.model)
    return [checker.check([observed_server], predictions, {observed_server.name: target})[observed_server.name]
            for _ in range(CYCLES)]


@pytest.mark.slow
def test_manifests_data_on_an_overloaded_emulated_server_gives_a_clear_warning() -> None:
    observed = observe(2.0, 12.0)  # the stair-step's top on a --max-num-seqs 2 replica
    last = checks(load_system_dir(str(BASE / "data"), require_servers=False).system, server(2.0, observed))[-1]
    assert last.prediction.max_batch == 608 and last.prediction.ttft_ms < 100
    assert observed.ttft_ms > 10 * last.prediction.ttft_ms
    assert last.mismatch and "batch 608" in last.warning and "not to be trusted" in last.warning


@pytest.mark.slow
def test_the_demos_calibrated_data_at_its_base_load_gives_no_warning() -> None:
    scenario = Scenario()
    observed = observe(scenario.server("Bronze-granite_13b").base_rps, 12.0)
    results = checks(static_system(scenario), server(scenario.server("Bronze-granite_13b").base_rps, observed))
    assert results[-1].prediction.max_batch == 2
    assert not any(c.mismatch for c in results), results[-1]
    assert results[-1].disagreeing_cycles == 0
