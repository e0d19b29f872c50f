"""The demo's percentile class (harness/scenario.py): the P90 targets reach the data files the stack writes, and
they are what sizes the stepped server at its stepped load, as the scenario's docstring tells."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.scenario import SAMPLES, Scenario, slo, static_system, write_static_data
from services.core import datafiles
from services.core import model as m
from services.optimizer.solver import solve

SCENARIO = Scenario()
STEPPED = SCENARIO.server(SCENARIO.stepped)


def _without_p90(system: m.SystemData) -> m.SystemData:
    return replace(system, service_classes=tuple(
        replace(c, targets=tuple(replace(t, slo_ttft_p90_ms=0.0, slo_itl_p90_ms=0.0) for t in c.targets))
        for c in system.service_classes))


def _allocation(system: m.SystemData, rpm: float) -> m.Allocation:
    """The optimizer's answer for the stepped server at ``rpm`` (fixed lengths, as the collector measures them)
    running 2 replicas now."""
    server = m.Server(STEPPED.name, STEPPED.service_class, STEPPED.model, current=m.Allocation(
        "G2", 2, STEPPED.max_batch, load=m.Load(rpm, SCENARIO.in_tokens, SCENARIO.out_tokens, 0.0)))
    return solve(replace(system, servers=(server,))).solution.allocations[STEPPED.name]


def test_the_stepped_servers_class_carries_p90_targets_in_the_written_data_and_nothing_else_changes(tmp_path):
    system = static_system(SCENARIO)
    target = slo(system, STEPPED)
    assert (target.slo_ttft_p90_ms, target.slo_itl_p90_ms) == (1000.0, 80.0)
    assert (target.slo_ttft_ms, target.slo_itl_ms) == (1000.0, 80.0)  # the sample's means stay
    written = datafiles.load_system_dir(write_static_data(SCENARIO, str(tmp_path)), strict=True).system
    assert slo(written, STEPPED) == target
    sample = datafiles.load_system_dir(SAMPLES, strict=True).system
    assert _without_p90(system).service_classes == sample.service_classes
    others = [t for c in system.service_classes for t in c.targets
              if (c.name, t.model) != (STEPPED.service_class, STEPPED.model)]
    assert others and not any(t.percentile_targets() for t in others)


def test_at_the_measured_stepped_load_the_p90_target_sets_the_batch_the_means_would_miss_it():
    with_p90 = _allocation(static_system(SCENARIO), 244.0)
    means_only = _allocation(_without_p90(static_system(SCENARIO)), 244.0)
    assert with_p90.num_replicas == means_only.num_replicas == 2
    assert with_p90.ttft_ms_p90 <= STEPPED.ttft_p90_ms and with_p90.itl_ms_p90 <= STEPPED.itl_p90_ms
    assert means_only.ttft_ms <= 1000.0 < means_only.ttft_ms_p90  # the mean is met, the P90 users feel is not
    assert with_p90.max_batch > means_only.max_batch


@pytest.mark.parametrize("rpm", [90.0, 200.0, 244.0, 270.0, 300.0, 330.0])
def test_the_p90_class_never_gets_fewer_replicas_than_its_means_alone_and_more_at_300_rpm(rpm: float):
    with_p90 = _allocation(static_system(SCENARIO), rpm)
    means_only = _allocation(_without_p90(static_system(SCENARIO)), rpm)
    assert with_p90.num_replicas >= means_only.num_replicas
    if rpm == 300.0:
        assert (with_p90.num_replicas, means_only.num_replicas) == (3, 2)
    if rpm <= 270.0:  # the demo's step keeps two replicas after the scale-up (cycle 3 changes nothing)
        assert with_p90.num_replicas == (1 if rpm < 100 else 2)
