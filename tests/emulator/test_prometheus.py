"""The Prometheus runner: a real server scrapes emulated replicas found through file_sd and keeps ``vllm:``."""

from __future__ import annotations

import json
import time

import pytest
import requests

from emulator.prometheus import PrometheusRunner, prometheus_binary, render_config, sd_target, write_file_sd
from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams

pytestmark = pytest.mark.slow

needs_prometheus = pytest.mark.skipif(prometheus_binary() is None, reason="the prometheus binary is not installed")


def test_file_sd_is_replaced_atomically_with_labels(tmp_path):
    path = tmp_path / "targets.json"
    write_file_sd(str(path), [sd_target(8000, {"namespace": "a", "pod": "p", "deployment": "d"})])
    write_file_sd(str(path), [sd_target(8001, {"namespace": "a", "pod": "q", "deployment": "d"})])
    assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:8001"],
                                             "labels": {"namespace": "a", "pod": "q", "deployment": "d"}}]
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]


def test_config_discovers_targets_from_the_file():
    config = json.loads(render_config("/x/targets.json", 1, 1))
    job = config["scrape_configs"][0]
    assert job["file_sd_configs"] == [{"files": ["/x/targets.json"], "refresh_interval": "1s"}]
    assert config["global"]["scrape_interval"] == "1s"


@needs_prometheus
def test_prometheus_scrapes_vllm_names_with_colons():
    replica = VllmServer(EngineParams(alpha_ms=5, beta_ms=0, gamma_ms=0), "granite_13b").start()
    runner = PrometheusRunner(scrape_interval_s=0.5, refresh_interval_s=0.5)
    try:
        write_file_sd(runner.sd_path, [sd_target(replica.port, {"namespace": "ns1", "pod": "pod-a",
                                                                "deployment": "dep"})])
        runner.start()
        for _ in range(2):
            requests.post(replica.url + "/v1/completions", json={"prompt": "a b", "max_tokens": 2}, timeout=5)
        assert runner.wait_targets_up(1, timeout_s=20)
        result = []
        for _ in range(40):
            result = runner.query('vllm:request_success_total{namespace="ns1", pod="pod-a"}')
            if result and float(result[0]["value"][1]) == 2:
                break
            time.sleep(0.25)
        assert result and float(result[0]["value"][1]) == 2
        assert result[0]["metric"]["deployment"] == "dep"
        assert runner.query("vllm_request_success_total") == []
    finally:
        runner.stop()
        replica.stop()
    assert runner._process is None
