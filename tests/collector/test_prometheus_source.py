"""PrometheusSource against a fake Prometheus on 127.0.0.1: figures per pod, garbage answers, token header."""

from __future__ import annotations

import subprocess

import pytest

from services.collector import aggregate
from services.collector.prometheus_source import PrometheusSource
from services.core.model import LoadSource
from tests.collector.fakes import FakePrometheus, deployment

pytestmark = pytest.mark.slow


@pytest.fixture
def prom():
    fake = FakePrometheus(pods=("pod-a", "pod-b"))
    yield fake
    fake.stop()


def test_figures_are_read_per_pod_and_summed_per_deployment(prom):
    facts = deployment(pods=("pod-a", "pod-b"))
    rates, warnings = PrometheusSource(prom.url, "20s", 2.0).read([facts])
    assert warnings == []
    managed, notes = aggregate.collect_one(facts, rates[("llm", "vllm")], LoadSource.PROMETHEUS, None)
    server = managed.server
    assert notes == []
    assert server.load.arrival_rate_rpm == pytest.approx(2 * 2.0 * 60)
    # per-request token histograms (190 / 95 per request) win over the token counters (200 / 100)
    assert (server.load.avg_in_tokens, server.load.avg_out_tokens) == (190.0, 95.0)
    # the generation-token buckets (25% up to 50, 55% in 50-100, 20% in 100-200 tokens) give the C2
    assert 0.1 < server.load.out_tokens_c2 < 0.6
    assert server.observed.itl_ms == pytest.approx(20.0)
    assert server.observed.ttft_ms == pytest.approx(250.0)
    assert server.observed.e2e_ms == pytest.approx(2500.0)
    assert server.observed.kv_cache_usage == 0.25 and server.observed.requests_running == 6.0
    assert all('namespace=~"llm"' in q and "[20s]" in q for q in prom.queries)


def test_pods_of_other_deployments_are_not_counted(prom):
    rates, _ = PrometheusSource(prom.url, "1m", 2.0).read([deployment(pods=("pod-a",))])
    assert set(rates[("llm", "vllm")]) == {"pod-a"}


@pytest.mark.parametrize("mode", ["nan", "empty"])
def test_nan_or_empty_answers_give_no_data_and_the_labels_are_used(prom, mode):
    prom.mode = mode
    facts = deployment()
    rates, warnings = PrometheusSource(prom.url, "1m", 2.0).read([facts])
    assert rates == {} and warnings == []
    result = aggregate.collect([facts], rates, LoadSource.PROMETHEUS, None)
    assert result.servers[0].load.arrival_rate_rpm == 30.0
    assert result.servers[0].observed.source == "labels"
    assert any("from load labels: no prometheus data" in w for w in result.warnings)


@pytest.mark.parametrize("mode", ["http500", "garbage", "slow"])
def test_failing_answers_are_one_warning_and_no_data(prom, mode):
    prom.mode = mode
    rates, warnings = PrometheusSource(prom.url, "1m", 0.3).read([deployment()])
    assert rates == {}
    assert len(warnings) == 1 and "gave no usable answer" in warnings[0] and "load from labels" in warnings[0]


def test_prometheus_not_listening_is_a_warning(prom):
    url = prom.url
    prom.stop()
    rates, warnings = PrometheusSource(url, "1m", 0.5).read([deployment()])
    assert rates == {} and "ConnectionError" in warnings[0]


def test_bearer_token_is_read_from_the_file_at_each_read(prom, tmp_path):
    token = tmp_path / "token"
    token.write_text("first\n")
    source = PrometheusSource(prom.url, "1m", 2.0, token_path=str(token))
    source.read([deployment()])
    token.write_text("second")
    source.read([deployment()])
    assert set(prom.auth) == {"Bearer first", "Bearer second"}


def test_unreadable_token_file_is_a_warning(prom, tmp_path):
    _, warnings = PrometheusSource(prom.url, "1m", 2.0, token_path=str(tmp_path / "absent")).read([deployment()])
    assert "FileNotFoundError" in warnings[0]


def test_no_deployments_means_no_query(prom):
    assert PrometheusSource(prom.url, "1m", 2.0).read([]) == ({}, [])
    assert prom.queries == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, made by openssl."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "prometheus.crt"), str(where / "prometheus.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_prom(certificate):
    fake = FakePrometheus(pods=("pod-a",), tls=certificate)
    yield fake
    fake.stop()


def test_https_prometheus_is_verified_against_the_configured_ca_bundle(https_prom, certificate):
    rates, warnings = PrometheusSource(https_prom.url, "1m", 2.0, ca_path=certificate[0]).read([deployment()])
    assert warnings == [] and set(rates[("llm", "vllm")]) == {"pod-a"}


def test_https_prometheus_with_an_unknown_certificate_is_refused_with_a_warning(https_prom):
    rates, warnings = PrometheusSource(https_prom.url, "1m", 2.0).read([deployment()])
    assert rates == {} and len(warnings) == 1 and "SSLError" in warnings[0]
    assert https_prom.queries == []  # nothing was sent over the unverified connection
