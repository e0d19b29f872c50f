"""Entry point of the collector container: wiring only (python -m services.collector)."""

from __future__ import annotations

import os

from services.collector.capacity import NodeCapacitySource
from services.collector.collect import Collector
from services.collector.prometheus_source import PrometheusSource
from services.collector.promql import window_seconds
from services.collector.scrape_source import DirectScrapeSource
from services.collector.servicer import SERVICE_NAME, CollectorServicer, register
from services.collector.sources import KubeSource
from services.common.config import load_config
from services.common.grpcserve import serve
from services.common.kube import load_api_client
from services.common.logs import configure_logging

DIRECT_SCRAPE_MAX_INTERVAL_S = 10.0


def main() -> None:
    """Load the config, build the sources (Prometheus when configured, else direct scrape), serve gRPC."""
    config = load_config(os.environ)
    configure_logging(config.log_level)
    api = load_api_client()
    if config.prometheus_url:
        metrics = PrometheusSource(config.prometheus_url, config.prometheus_window, config.prometheus_timeout_s,
                                   token_path=config.prometheus_token_path, ca_path=config.prometheus_ca_path)
    else:
        interval_s = min(window_seconds(config.prometheus_window), DIRECT_SCRAPE_MAX_INTERVAL_S)
        metrics = DirectScrapeSource(interval_s, config.prometheus_timeout_s)
    nodes = NodeCapacitySource(api, config.accelerator_node_labels) if config.capacity_from_nodes else None
    collector = Collector(KubeSource(api), metrics, config.data_path, watch_namespaces=config.watch_namespaces,
                          nodes=nodes)
    serve(register(CollectorServicer(collector)), [SERVICE_NAME], f"{config.bind_address}:{config.collector_port}",
          grace_s=config.shutdown_grace_s, component="collector")


if __name__ == "__main__":
    main()
