"""Entry point of the actuator container: wiring only (python -m services.actuator)."""

from __future__ import annotations

import os

from services.actuator.kube import KubeActuator
from services.actuator.metrics import ActuatorMetrics
from services.actuator.plan import PlanSettings
from services.actuator.servicer import SERVICE_NAME, ActuatorServicer, register
from services.common.config import load_config
from services.common.grpcserve import serve
from services.common.kube import load_api_client
from services.common.logs import configure_logging


def main() -> None:
    """Load the config, build the kube client, serve /metrics and the gRPC service until SIGTERM."""
    config = load_config(os.environ)
    configure_logging(config.log_level)
    settings = PlanSettings(config.max_replica_change, config.accelerator_node_labels, config.set_max_num_seqs,
                            config.scale_down_stabilization_s)
    metrics = ActuatorMetrics()
    metrics.serve(config.bind_address, config.actuator_metrics_port)
    servicer = ActuatorServicer(KubeActuator(load_api_client(), settings), metrics, force_dry_run=config.dry_run)
    serve(register(servicer), [SERVICE_NAME], f"{config.bind_address}:{config.actuator_port}",
          grace_s=config.shutdown_grace_s, component="actuator")


if __name__ == "__main__":
    main()
