"""Test doubles for the collector: a tiny fake Prometheus HTTP API on 127.0.0.1 and fixed sources."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from services.collector.aggregate import DeploymentFacts, PodFacts
from services.core.labels import LOAD_IN_TOKENS, LOAD_OUT_TOKENS, LOAD_RPM, MANAGED, MODEL, NAME
from services.core.model import KubeRef, LoadSource

# Per-pod figures the fake Prometheus answers, keyed by a fragment of the vLLM name in the query.
FIGURES = {
    "request_success_total": 2.0, "prompt_tokens_total": 400.0, "generation_tokens_total": 200.0,
    "inter_token_latency_seconds_sum": 4.0, "inter_token_latency_seconds_count": 200.0,
    "time_to_first_token_seconds_sum": 0.5, "time_to_first_token_seconds_count": 2.0,
    "e2e_request_latency_seconds_sum": 5.0, "e2e_request_latency_seconds_count": 2.0,
    "num_requests_running": 3.0, "num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.25,
    "request_prompt_tokens_sum": 380.0, "request_prompt_tokens_count": 2.0,
    "request_generation_tokens_sum": 190.0, "request_generation_tokens_count": 2.0,
}

BUCKETS = {"request_generation_tokens_bucket": ((50.0, 0.5), (100.0, 1.6), (200.0, 2.0), (float("inf"), 2.0))}
"""Per-pod cumulative bucket rates (le, per s) the fake answers to a per-bucket query."""


class FakePrometheus:
    """Answers /api/v1/query for pods ``pods`` in namespace ``namespace``; ``mode`` picks the behaviour:
    ok, nan, empty, http500, garbage, slow. Records the queries and Authorization headers it saw. With
    ``tls`` = (certificate file, key file) it serves HTTPS."""

    def __init__(self, namespace: str = "llm", pods: tuple[str, ...] = ("pod-a",),
                 tls: tuple[str, str] | None = None) -> None:
        self.mode = "ok"
        self.namespace = namespace
        self.pods = pods
        self.queries: list[str] = []
        self.auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: D401 - quiet
                pass

            def do_GET(self):  # noqa: N802
                fake.handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def _value(self, query: str) -> str:
        for fragment, value in FIGURES.items():
            # the new ITL name is asked first: answering it makes the 'or' branch for the old name moot
            if fragment in query.split(" or ")[0]:
                return "NaN" if self.mode == "nan" else repr(value)
        return "0"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlparse(request.path).query).get("query", [""])[0]
        self.queries.append(query)
        self.auth.append(request.headers.get("Authorization"))
        if self.mode == "slow":
            time.sleep(1.0)
        if self.mode == "http500":
            body, status = b'{"status":"error","error":"boom"}', 500
        elif self.mode == "garbage":
            body, status = b"<html>not json</html>", 200
        else:
            buckets = next((b for name, b in BUCKETS.items() if name in query), None)
            if self.mode == "empty":
                result = []
            elif buckets is not None:
                result = [{"metric": {"namespace": self.namespace, "pod": pod, "le": repr(le).replace("inf", "+Inf")},
                           "value": [time.time(), "NaN" if self.mode == "nan" else repr(rate)]}
                          for pod in self.pods for le, rate in buckets]
            else:
                result = [{"metric": {"namespace": self.namespace, "pod": pod},
                           "value": [time.time(), self._value(query)]} for pod in self.pods]
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
            status = 200
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


LABELS = {MANAGED: "true", NAME: "premium-llama", MODEL: "llama", LOAD_RPM: "30", LOAD_IN_TOKENS: "10",
          LOAD_OUT_TOKENS: "20"}


def deployment(namespace: str = "llm", name: str = "vllm", pods: tuple[str, ...] = ("pod-a",),
               labels: dict | None = None) -> DeploymentFacts:
    """A managed Deployment with load labels and ready pods."""
    return DeploymentFacts(KubeRef(namespace, name, f"uid-{name}"), labels or dict(LABELS), len(pods), len(pods),
                           tuple(PodFacts(p, "127.0.0.1", True, 1) for p in pods))


class FixedKube:
    """A DeploymentSource returning fixed facts (or raising ``error``); records the namespaces asked."""

    def __init__(self, facts: list[DeploymentFacts], error: Exception | None = None) -> None:
        self.facts = facts
        self.error = error
        self.asked: list[list[str]] = []

    def deployments(self, namespaces=()):
        self.asked.append(list(namespaces))
        if self.error:
            raise self.error
        return [f for f in self.facts if not namespaces or f.ref.namespace in namespaces]


class FixedMetrics:
    """A MetricsSource returning fixed rates and warnings."""

    source = LoadSource.PROMETHEUS

    def __init__(self, rates=None, warnings=()) -> None:
        self.rates = rates or {}
        self.warnings = list(warnings)

    def read(self, deployments):
        return self.rates, list(self.warnings)


def write_data(path, capacity=True, model="llama"):
    """Static data (one A100, model llama, class Premium) and a capacity file of 6 A100 in ``path``."""
    files = {
        "accelerator-data.json": {"accelerators": [{"name": "A100", "type": "A100", "cost": 40}]},
        "model-data.json": {"models": [{"name": model, "acc": "A100", "accCount": 1, "maxBatchSize": 64,
                                        "atTokens": 512, "perfParms": {"alpha": 10, "beta": 0.1, "gamma": 0.01}}]},
        "serviceclass-data.json": {"serviceClasses": [{"name": "Premium", "priority": 1, "modelTargets": [
            {"model": model, "slo-itl": 40, "slo-ttft": 500}]}]},
    }
    if capacity:
        files["capacity-data.json"] = {"count": [{"type": "A100", "count": 6}]}
    for name, body in files.items():
        (path / name).write_text(json.dumps(body))
    return str(path)
