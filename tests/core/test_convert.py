"""The proto mapping: model -> proto -> model is the identity on both sample sets; bad wire values are named."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from proto import actuator_pb2, collector_pb2, optimizer_pb2, types_pb2
from services.core import datafiles
from services.core import model as m
from services.core.errors import InvalidInputError
from services.runtime import convert

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "inferno"


@pytest.mark.parametrize("name", ["small", "large"])
def test_system_survives_proto_round_trip(name: str) -> None:
    system = datafiles.load_system_dir(str(SAMPLES / name)).system
    wire = convert.system_to_proto(system).SerializeToString()
    assert convert.system_from_proto(types_pb2.SystemData.FromString(wire)) == system


def test_published_solution_survives_proto_round_trip() -> None:
    solution = datafiles.read_solution(str(SAMPLES / "small" / "solution-data.json"))
    response = convert.solution_to_proto(solution)
    assert [row.server_name for row in response.allocations] == sorted(solution.allocations)
    assert convert.solution_from_proto(response) == solution


def test_server_with_desired_allocation_and_observations_round_trips() -> None:
    server = m.Server(
        name="Premium-llama_13b", service_class="Premium", model="llama_13b", keep_accelerator=True,
        min_replicas=1, current=m.Allocation("G2", 2, 38, 46.0, 30.0, 400.0, m.Load(60, 128, 1024)),
        desired=m.Allocation("A100", 3, 32, 120.0, saturated=True, unserved_rate_rpm=5.0),
        observed=m.ObservedMetrics(itl_ms=31.5, ttft_ms=None, requests_waiting=0.0, source="prometheus"))
    assert convert.server_from_proto(convert.server_to_proto(server)) == server


def test_unset_observation_stays_unknown_not_zero() -> None:
    observed = convert.observed_from_proto(types_pb2.ObservedMetrics(itl_ms=0.0, source="labels"))
    assert observed.itl_ms == 0.0 and observed.ttft_ms is None


BAD = [
    pytest.param(types_pb2.SystemData(optimizer=types_pb2.OptimizerSettings(saturation_policy="Greedy")),
                 r"system.optimizer.saturation_policy must be one of .* got 'Greedy'", id="policy"),
    pytest.param(types_pb2.SystemData(servers=[types_pb2.Server(name="s", min_replicas=-1)]),
                 r"system.servers\[s\].min_replicas must be a non-negative number, got -1", id="min-replicas"),
    pytest.param(types_pb2.SystemData(servers=[types_pb2.Server(name="")]), r"system.servers.name must not be empty",
                 id="server-name"),
    pytest.param(types_pb2.SystemData(capacity=types_pb2.Capacity(counts={"G2": -2})),
                 r"system.capacity.counts\[G2\] must be a non-negative number, got -2", id="capacity"),
    pytest.param(types_pb2.SystemData(servers=[types_pb2.Server(
        name="s", current=types_pb2.Allocation(load=types_pb2.Load(arrival_rate_rpm=float("nan"))))]),
        r"system.servers\[s\].current.load.arrival_rate_rpm must be a non-negative number, got nan", id="nan"),
]


@pytest.mark.parametrize(("msg", "message"), BAD)
def test_bad_wire_value_is_named(msg: types_pb2.SystemData, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        convert.system_from_proto(msg)


def test_repeated_server_in_allocations_is_rejected() -> None:
    row = optimizer_pb2.ServerAllocation(server_name="a", allocation=types_pb2.Allocation(accelerator="G2"))
    with pytest.raises(InvalidInputError, match="'a' is empty or repeated"):
        convert.allocations_from_proto([row, row])


def test_model_v1_inputs_survive_proto_round_trip() -> None:
    settings = m.OptimizerSettings(service_model=m.ServiceModel.V1, output_c2=0.0, token_budget=2048)
    assert convert.settings_from_proto(convert.settings_to_proto(settings)) == settings
    assert convert.settings_from_proto(types_pb2.OptimizerSettings()) == m.OptimizerSettings()
    for load in (m.Load(60, 100, 200, out_tokens_c2=0.0), m.Load(60, 100, 200, out_tokens_c2=1.5), m.Load(60, 1, 2)):
        assert convert.load_from_proto(convert.load_to_proto(load)) == load
    perf = m.ModelPerf("llama", "H100", 1, 512, 1024, m.PerfParms(6.6, 0.02, 5e-5, ttft_overhead_ms=8.0))
    assert convert.model_perf_from_proto(convert.model_perf_to_proto(perf)) == perf


def test_percentile_slos_survive_proto_round_trip_and_negative_is_named() -> None:
    sc = m.ServiceClass("Premium", 1, (m.ModelTarget("llama", slo_itl_ms=20, slo_ttft_p90_ms=400,
                                                     slo_itl_p99_ms=60),))
    assert convert.service_class_from_proto(convert.service_class_to_proto(sc)) == sc
    msg = convert.service_class_to_proto(sc)
    msg.targets[0].slo_ttft_p99_ms = -5
    with pytest.raises(InvalidInputError, match="slo_ttft_p99_ms"):
        convert.service_class_from_proto(msg)


PAIRS = [
    (m.PowerProfile, types_pb2.PowerProfile), (m.Accelerator, types_pb2.Accelerator),
    (m.Capacity, types_pb2.Capacity), (m.PerfParms, types_pb2.PerfParms), (m.ModelPerf, types_pb2.ModelPerf),
    (m.ModelTarget, types_pb2.ModelTarget), (m.ServiceClass, types_pb2.ServiceClass), (m.Load, types_pb2.Load),
    (m.Allocation, types_pb2.Allocation), (m.ObservedMetrics, types_pb2.ObservedMetrics),
    (m.Server, types_pb2.Server), (m.OptimizerSettings, types_pb2.OptimizerSettings),
    (m.Deviation, types_pb2.Deviation), (m.Robustness, types_pb2.Robustness), (m.SystemData, types_pb2.SystemData),
    (m.KubeRef, types_pb2.KubeRef), (m.ManagedServer, types_pb2.ManagedServer),
    (m.Collection, collector_pb2.CollectResponse), (m.Prediction, optimizer_pb2.CurrentPrediction),
    (m.Notice, actuator_pb2.ServerNotice), (m.ActuationResult, actuator_pb2.ActuationResult),
]


@pytest.mark.parametrize(("cls", "message"), PAIRS, ids=[cls.__name__ for cls, _ in PAIRS])
def test_proto_field_names_are_the_dataclass_field_names(cls: type, message: type) -> None:
    """The generic mapper maps by name: a field added to one side only would be dropped on the wire."""
    assert sorted(f.name for f in fields(cls)) == sorted(message.DESCRIPTOR.fields_by_name)


def test_collection_results_notices_and_predictions_survive_proto_round_trip() -> None:
    server = m.Server("a", "Premium", "llama", min_replicas=2, current=m.Allocation("G2", 1, load=m.Load(6, 10, 20)),
                      observed=m.ObservedMetrics(in_system_growth_rpm=-3.0, ready_replicas=0, source="labels"))
    collection = m.Collection(
        managed=(m.ManagedServer(server, m.KubeRef("llm", "a", "u1"), 1, 0, load_measured=False),
                 m.ManagedServer(m.Server("b"), m.KubeRef("llm", "b"))),
        warnings=("w",), capacity=m.Capacity({"G2": 4, "A100": 0}))
    assert convert.collection_from_proto(convert.collection_to_proto(collection)) == collection
    result = m.ActuationResult("a", m.KubeRef("llm", "a"), m.ActuationOutcome.SKIPPED, "held", 3, 2, "G2", True)
    assert convert.actuation_result_from_proto(convert.actuation_result_to_proto(result)) == result
    notices = [m.Notice("a", "Warning", "ModelMismatch", "ITL 40 ms observed, 20 ms predicted")]
    assert convert.notices_from_proto(convert.notices_to_proto(notices)) == notices
    predictions = {"a": m.Prediction("a", "G2", 2, 16, 20.0, float("inf"), saturated=True)}
    assert convert.predictions_from_proto(convert.predictions_to_proto(predictions)) == predictions
    robust = m.OptimizerSettings(robustness=m.Robustness(0.5, m.Deviation(0.1), (("llama", "G2", m.Deviation(0.3)),)))
    assert convert.settings_from_proto(convert.settings_to_proto(robust)) == robust


def test_wire_zeros_that_mean_the_default_and_an_unset_outcome() -> None:
    acc = convert.from_proto(types_pb2.Accelerator(name="G2"), m.Accelerator, "accelerator")
    assert (acc.type, acc.multiplicity) == ("G2", 1)
    assert convert.server_from_proto(types_pb2.Server(name="s")).service_class == m.DEFAULT_CLASS
    with pytest.raises(InvalidInputError, match=r"results\[a\].outcome must be set"):
        convert.actuation_result_from_proto(actuator_pb2.ActuationResult(server_name="a"))
    with pytest.raises(InvalidInputError, match=r"robustness.deviations\[1\]: duplicate model/accelerator m/G2"):
        convert.settings_from_proto(types_pb2.OptimizerSettings(robustness=types_pb2.Robustness(
            deviations=[types_pb2.PairDeviation(model="m", accelerator="G2")] * 2)))


def test_repeated_figures_are_checked_element_by_element() -> None:
    pool = m.Allocation("G2", 2, class_rpm=(30.0, 12.5), class_latency_s=(1.5, 4.0))
    assert convert.allocation_from_proto(convert.allocation_to_proto(pool)) == pool
    with pytest.raises(InvalidInputError, match=r"allocation.class_rpm\[1\] must be a non-negative number, got -1"):
        convert.allocation_from_proto(types_pb2.Allocation(class_rpm=[3.0, -1.0]))
