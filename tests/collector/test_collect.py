"""Collector orchestration with fake sources: static data checks, capacity from file or Nodes."""

from __future__ import annotations

from services.collector.collect import Collector
from services.core import model as m
from tests.collector.fakes import FixedKube, FixedMetrics, deployment, write_data


class FixedNodes:
    def __init__(self, counts, warnings=()):
        self.counts = counts
        self.warnings = list(warnings)
        self.managed = None

    def capacity(self, static, managed_pods):
        self.managed = managed_pods
        return m.Capacity(self.counts), list(self.warnings)


def test_unknown_class_is_a_warning_against_the_static_data(tmp_path):
    labels = {**deployment().labels, "inferno.server.class": "Gold"}
    snapshot = Collector(FixedKube([deployment(labels=labels)]), FixedMetrics(), write_data(tmp_path)).collect()
    assert [s.service_class for s in snapshot.servers] == ["Gold"]
    assert any("llm/vllm: label inferno.server.class='Gold' names a service class the data does not know" in w
               for w in snapshot.warnings)


def test_unreadable_static_data_is_a_warning_and_servers_are_still_collected(tmp_path):
    snapshot = Collector(FixedKube([deployment()]), FixedMetrics(), str(tmp_path / "absent")).collect()
    assert len(snapshot.servers) == 1
    assert snapshot.warnings[0].startswith("static data not read, labels not checked against it")
    assert snapshot.capacity.counts == {}


def test_capacity_from_nodes_excludes_managed_pods_and_wins_over_the_file(tmp_path):
    nodes = FixedNodes({"A100": 3})
    snapshot = Collector(FixedKube([deployment(pods=("p1", "p2"))]), FixedMetrics(), write_data(tmp_path),
                         nodes=nodes).collect()
    assert dict(snapshot.capacity.counts) == {"A100": 3}
    assert nodes.managed == {("llm", "p1"), ("llm", "p2")}


def test_nodes_without_gpus_fall_back_to_the_capacity_file(tmp_path):
    snapshot = Collector(FixedKube([]), FixedMetrics(), write_data(tmp_path), nodes=FixedNodes({})).collect()
    assert dict(snapshot.capacity.counts) == {"A100": 6}
    assert "no GPUs found on Nodes; capacity from the data file" in snapshot.warnings


def test_malformed_capacity_file_is_a_warning(tmp_path):
    path = write_data(tmp_path)
    (tmp_path / "capacity-data.json").write_text("{not json")
    snapshot = Collector(FixedKube([]), FixedMetrics(), path).collect()
    assert snapshot.capacity.counts == {}
    assert any(w.startswith("capacity not read: capacity-data.json") for w in snapshot.warnings)


def test_static_data_given_by_the_caller_is_used_and_no_data_file_is_read(tmp_path):
    """The controller reads the static data once per cycle and passes it (CollectRequest.static): labels are
    checked, costs and the capacity fallback taken from it; the collector's own data path is not read."""
    static = m.SystemData(accelerators=(m.Accelerator("H100", "H100", cost_per_hour=90.0),),
                          models=(m.ModelPerf("llama", "H100", 1, 64, 512, m.PerfParms(10, 0.1, 0.01)),),
                          service_classes=(m.ServiceClass("Premium", 1),), capacity=m.Capacity({"H100": 2}))
    labels = {**deployment().labels, "inferno.server.class": "Gold", "inferno.server.allocation.accelerator": "H100"}
    absent = str(tmp_path / "absent")
    snapshot = Collector(FixedKube([deployment(labels=labels)]), FixedMetrics(), absent).collect(static=static)
    assert not any(w.startswith("static data not read") for w in snapshot.warnings)
    assert any("names a service class the data does not know" in w for w in snapshot.warnings)
    assert snapshot.servers[0].current.cost_per_hour == 90.0
    assert dict(snapshot.capacity.counts) == {"H100": 2}
    nodes = Collector(FixedKube([]), FixedMetrics(), absent, nodes=FixedNodes({})).collect(static=static)
    assert dict(nodes.capacity.counts) == {"H100": 2}
