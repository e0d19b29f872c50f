"""Scenario files: the shipped ones load; a bad field is a clear error naming the file, the field and the value,
and the CLI exits 2 with it."""

from __future__ import annotations

import copy

import pytest
import yaml

from sim import scenario
from sim.__main__ import main
from sim.scenario import ScenarioError, parse

BASE = {
    "name": "t", "seed": 3,
    "server": {"name": "s", "model": "m", "accelerator": "L40S", "perf": {"alpha_ms": 20, "beta_ms": 0.05,
                                                                          "gamma_ms": 1e-4},
               "max_num_seqs": 8, "kv_cache_tokens": 50000},
    "slo": {"ttft_ms": 600, "itl_ms": 100},
    "load": {"phases": [{"rate_rps": 1.0, "duration_s": 60}], "prompt_tokens": 100, "output_tokens": 20},
}


@pytest.mark.parametrize("name", scenario.available())
def test_every_shipped_scenario_loads(name: str) -> None:
    loaded = scenario.load(name)
    assert loaded.name == name and loaded.duration_s > 0 and loaded.load.schedule.peak_rps > 0


def test_seed001_is_the_published_stair_step() -> None:
    s = scenario.load("seed001-stairstep")
    rates = [(p.duration_s, p.rate_rps) for p in s.load.schedule.phases]
    assert rates == [(600, 0.5), (600, 1.0), (600, 1.5), (1800, 2.0)]
    assert (s.server.max_num_seqs, s.slo.ttft_ms, s.slo.itl_ms, s.cluster.startup_s) == (64, 600, 100, 120)
    assert (s.load.prompt_tokens.mean, s.load.output_tokens.mean, s.cluster.initial_replicas) == (1024, 2048, 1)


def _with(path: str, value: object) -> dict:
    doc = copy.deepcopy(BASE)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "message"), [
    pytest.param("server.perf.alpha_ms", -1, "server.perf.alpha_ms: must be >= 0, got -1", id="negative-alpha"),
    pytest.param("server.perf.beta_ms", "fast", "server.perf.beta_ms: must be a finite number, got 'fast'",
                 id="not-a-number"),
    pytest.param("server.max_num_seqs", 0, "server.max_num_seqs: must be >= 1, got 0", id="zero-batch"),
    pytest.param("server.kv_cache_tokens", _DELETE, "server.kv_cache_tokens: missing required field", id="missing"),
    pytest.param("server.max_num_seq", 4, "server.max_num_seq: unknown field", id="typo-is-unknown"),
    pytest.param("slo.ttft_ms", 0, "slo.ttft_ms: must be > 0, got 0", id="zero-slo"),
    pytest.param("load.phases.0.rate_rps", -2, "load.phases[0].rate_rps: must be >= 0, got -2", id="negative-rate"),
    pytest.param("load.phases", [], "load.phases: must be a non-empty list", id="no-phases"),
    pytest.param("load.output_tokens", 0, "load.output_tokens: must be a length >= 1", id="zero-output"),
    pytest.param("load.output_tokens", {"dist": "pareto", "mean": 5}, "load.output_tokens: bad length distribution",
                 id="unknown-distribution"),
    pytest.param("metrics", {"window": "1 minute"}, "metrics.window: not a Prometheus duration", id="bad-window"),
    pytest.param("metrics", {"window": "20s"}, "metrics.window: must span at least two scrapes", id="short-window"),
    pytest.param("cluster", {"max_replicas": 2, "initial_replicas": 3}, "cluster.max_replicas: must be >=",
                 id="max-below-initial"),
    pytest.param("policies", {"hpa": {"metric": "cpu"}}, "policies.hpa.metric: must be one of", id="hpa-metric"),
    pytest.param("policies", {"static": {"replicas": 0}}, "policies.static.replicas: must be >= 1", id="static-0"),
    pytest.param("policies", {"keda": {}}, "policies.keda: unknown field", id="unknown-policy"),
])
def test_a_bad_field_is_an_error_naming_it(path: str, value: object, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(_with(path, value), "my.yaml")
    assert str(caught.value).startswith("my.yaml: ") and message in str(caught.value)


def test_the_cli_exits_2_naming_the_file_and_field(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with("server.perf.gamma_ms", "x")))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: server.perf.gamma_ms: must be a finite number, got 'x'" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_scenario_name_lists_the_shipped_ones(capsys) -> None:
    assert main(["run", "no-such-scenario"]) == 2
    assert "seed001-stairstep" in capsys.readouterr().err
