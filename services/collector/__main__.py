"""Entry point of the collector container: wiring only (python -m services.collector)."""

from __future__ import annotations

import sys

from services.collector.capacity import NodeCapacitySource
from services.collector.collect import Collector, ForecastSetup
from services.collector.prometheus_source import PrometheusSource
from services.collector.promql import window_seconds
from services.collector.scrape_source import DirectScrapeSource
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.collector.sources import KubeSource
from services.runtime.config import Config
from services.runtime.grpcserve import serve
from services.runtime.startup import kube_client, listening, run_service

DIRECT_SCRAPE_MAX_INTERVAL_S = 10.0
SUMMARY = ("The Inferno collector: gRPC CollectorService answering the managed Deployments with their load\n"
           "(from Prometheus at INFERNO_PROMETHEUS_URL, else scraped from the pods) and the static data of\n"
           "INFERNO_DATA_PATH. Needs a Kubernetes configuration: in-cluster, else KUBECONFIG or ~/.kube/config.")


def start(config: Config) -> None:
    """Build the sources (Prometheus when configured, else direct scrape), serve gRPC until SIGTERM."""
    api = kube_client()
    if config.prometheus_url:
        metrics = PrometheusSource(config.prometheus_url, config.prometheus_window, config.prometheus_timeout_s,
                                   token_path=config.prometheus_token_path, ca_path=config.prometheus_ca_path)
    else:
        interval_s = min(window_seconds(config.prometheus_window), DIRECT_SCRAPE_MAX_INTERVAL_S)
        metrics = DirectScrapeSource(interval_s, config.prometheus_timeout_s)
    nodes = NodeCapacitySource(api, config.accelerator_node_labels) if config.capacity_from_nodes else None
    setup = ForecastSetup(config.forecast_history_s, window_seconds(config.prometheus_window),
                          config.startup_delay_s, config.control_period_s or 60.0) if config.forecast else None
    collector = Collector(KubeSource(api), metrics, config.data_path, watch_namespaces=config.watch_namespaces,
                          nodes=nodes, max_replicas=config.max_replicas, forecast=setup)
    address = f"{config.bind_address}:{config.collector_port}"
    with listening(address, "INFERNO_BIND_ADDRESS", "INFERNO_COLLECTOR_PORT"):
        serve(register(CollectorServicer(collector)), [SERVICE_NAME], address, grace_s=config.shutdown_grace_s,
              component="collector", health_address=config.health_address(config.collector_health_port))


if __name__ == "__main__":
    sys.exit(run_service(sys.argv[1:], prog="python -m services.collector", summary=SUMMARY,
                         ports={"gRPC CollectorService": "INFERNO_COLLECTOR_PORT"}, start=start))
