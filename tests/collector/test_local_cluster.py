"""The collector against the local cluster: emulated API and vLLM replicas, a real Prometheus process, and
the emulator's load generator. Figures are compared with what the load generator applied and measured on
the client over the same window. Skipped only when the prometheus binary is absent.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import requests

from services.collector.collect import Collector
from services.collector.prometheus_source import PrometheusSource
from services.collector.scrape_source import DirectScrapeSource
from services.collector.sources import KubeSource
from services.runtime.kube import load_api_client
from tests.collector.fakes import write_data
from tests.collector.localcluster import DEPLOYMENT, NS, managed_deployment, start_local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("prometheus") is None,
                                                   reason="the prometheus binary is not installed")]

WINDOW = "20s"
WINDOW_S = 20.0
RATE_RPS = 8.0


class RecordingLoad:
    """The emulator's LoadGenerator, also keeping (completion time, prompt tokens, Sample) of each request."""

    def __init__(self, endpoints):
        from emulator.loadgen import LoadGenerator, Target, send_completion
        from emulator.loadshape import Length, constant

        self.records: list = []
        lock = threading.Lock()
        target = Target("granite", endpoints, constant(RATE_RPS, 600.0), in_tokens=Length("uniform", low=100, high=300),
                        out_tokens=Length("uniform", low=16, high=40), model="granite")

        class Recording(LoadGenerator):
            def _send(gen, target, url, body, sent_at_s=0.0):  # noqa: N805 - the generator, not the test object
                try:
                    sample = send_completion(url, body, timeout_s=gen.drain_s)
                    with lock:
                        self.records.append((time.monotonic(), body["prompt_tokens"], sample))
                    gen._record(target, sample)
                finally:
                    gen._slots.release()

        self.generator = Recording([target], seed=7)

    def window(self, end_s: float, length_s: float) -> list:
        """(prompt tokens, Sample) of the requests completed in [end - length, end]."""
        return [(p, s) for t, p, s in self.records if end_s - length_s <= t <= end_s and s.ok]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The cluster with 2 replicas under load for two windows; yields (cluster, collector, load, data_path)."""
    workdir = tmp_path_factory.mktemp("cluster")
    cluster = start_local_cluster(str(workdir))
    try:
        cluster.store.create("apps/v1", "deployments", NS, managed_deployment(2))
        assert cluster.reconciler.wait_ready(NS, DEPLOYMENT, 2, timeout_s=20)
        assert cluster.prometheus.wait_targets_up(2, timeout_s=20)
        load = RecordingLoad(lambda: cluster.reconciler.endpoints(NS, DEPLOYMENT))
        load.generator.start()
        api = load_api_client(cluster.kubeconfig)
        source = PrometheusSource(cluster.prometheus.url, WINDOW, 5.0)
        collector = Collector(KubeSource(api), source, write_data(workdir, model="granite"))
        time.sleep(2 * WINDOW_S + 1.0)
        yield cluster, collector, load
        load.generator.stop()
        api.close()
    finally:
        cluster.stop()


def test_load_tokens_and_latency_match_what_the_load_generator_applied_and_saw(loaded):
    cluster, collector, load = loaded
    started = time.monotonic()
    snapshot = collector.collect()
    collect_ms = (time.monotonic() - started) * 1000
    [server] = snapshot.servers
    window = load.window(started, WINDOW_S)
    applied_rpm = len(window) / WINDOW_S * 60
    in_tokens = sum(p for p, _ in window) / len(window)
    out_tokens = sum(s.tokens for _, s in window) / len(window)
    itl_ms = sum(s.itl_s * (s.tokens - 1) for _, s in window) / sum(s.tokens - 1 for _, s in window) * 1000
    ttft_ms = sum(s.ttft_s for _, s in window) / len(window) * 1000
    observed = server.observed
    print(f"\nrate {server.load.arrival_rate_rpm:.1f} vs {applied_rpm:.1f} rpm (nominal {RATE_RPS * 60:.0f}); "
          f"in {server.load.avg_in_tokens:.1f} vs {in_tokens:.1f}; out {server.load.avg_out_tokens:.2f} vs "
          f"{out_tokens:.2f}; itl {observed.itl_ms:.2f} vs {itl_ms:.2f} ms; ttft {observed.ttft_ms:.2f} vs "
          f"{ttft_ms:.2f} ms; collect {collect_ms:.0f} ms")
    assert observed.source == "prometheus" and snapshot.warnings == ()
    assert server.load.arrival_rate_rpm == pytest.approx(applied_rpm, rel=0.10)
    assert server.load.avg_in_tokens == pytest.approx(in_tokens, rel=0.05)
    assert server.load.avg_out_tokens == pytest.approx(out_tokens, rel=0.05)
    assert observed.itl_ms == pytest.approx(itl_ms, rel=0.10)
    assert observed.ttft_ms == pytest.approx(ttft_ms, rel=0.10)
    assert observed.ready_replicas == 2 and server.current.num_replicas == 2
    assert observed.requests_running is not None and observed.kv_cache_usage is not None
    # percentiles: the collector's interpolation over the pods' summed buckets against Prometheus's own
    # histogram_quantile over the same window, queried right after
    for metric, name in (("ttft", "time_to_first_token_seconds"), ("itl", "inter_token_latency_seconds")):
        for q in (50, 90, 99):
            query = (f'histogram_quantile({q / 100}, sum by (le) '
                     f'(rate({{__name__=~"vllm[:_]{name}_bucket"}}[{WINDOW}])))')
            answer = requests.get(f"{cluster.prometheus.url}/api/v1/query", params={"query": query}, timeout=5).json()
            expected = float(answer["data"]["result"][0]["value"][1]) * 1000
            got = getattr(observed, f"{metric}_ms_p{q}")
            print(f"{metric} P{q}: collector {got:.2f} ms, Prometheus histogram_quantile {expected:.2f} ms")
            assert got == pytest.approx(expected, rel=0.05)


def test_the_arrival_rate_history_comes_from_real_prometheus_range_queries(loaded):
    cluster, _, load = loaded
    [facts] = KubeSource(load_api_client(cluster.kubeconfig)).deployments([NS])
    source = PrometheusSource(cluster.prometheus.url, WINDOW, 5.0)
    history, warnings = source.arrival_history([facts], lookback_s=4 * WINDOW_S, step_s=5.0, end_s=time.time())
    series = history[(NS, DEPLOYMENT)]
    print(f"\narrival history (rpm): {[round(v) for v in series]}")
    assert warnings == [], "the range queries are accepted (a timeout Prometheus cannot parse was a 400)"
    assert len(series) >= 5
    assert sum(series[-3:]) / 3 == pytest.approx(RATE_RPS * 60, rel=0.25)


def test_prometheus_stopped_mid_test_the_labels_are_used_and_the_answer_says_so(loaded):
    cluster, collector, _ = loaded
    cluster.prometheus.stop()
    snapshot = collector.collect()
    [server] = snapshot.servers
    assert server.observed.source == "labels"
    assert (server.load.arrival_rate_rpm, server.load.avg_in_tokens, server.load.avg_out_tokens) == (7, 11, 13)
    assert any("gave no usable answer" in w for w in snapshot.warnings)
    assert any("from load labels" in w for w in snapshot.warnings)


def test_a_deployment_without_a_name_label_is_skipped_with_a_warning(loaded):
    cluster, collector, _ = loaded
    labels = {"inferno.server.managed": "true", "inferno.server.model": "granite"}
    cluster.store.create("apps/v1", "deployments", NS, managed_deployment(0, labels=labels, name="nameless"))
    snapshot = collector.collect()
    assert [s.name for s in snapshot.servers] == ["premium-granite"]
    assert f"Deployment {NS}/nameless: skipped: label inferno.server.name is missing or empty" in \
        snapshot.warnings


def test_direct_scrape_reads_the_replicas_without_prometheus(loaded):
    cluster, collector, load = loaded
    kube = KubeSource(load_api_client(cluster.kubeconfig))
    snapshot = Collector(kube, DirectScrapeSource(5.0, 2.0), str(cluster.prometheus.workdir)).collect()
    ended = time.monotonic()
    [server] = snapshot.servers
    window = load.window(ended, 5.0)
    itl_ms = sum(s.itl_s * (s.tokens - 1) for _, s in window) / sum(s.tokens - 1 for _, s in window) * 1000
    assert server.observed.source == "direct_scrape"
    assert server.load.arrival_rate_rpm == pytest.approx(len(window) / 5.0 * 60, rel=0.3)  # ~40 requests: noisy
    assert server.observed.itl_ms == pytest.approx(itl_ms, rel=0.10)
