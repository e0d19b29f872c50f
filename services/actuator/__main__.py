"""Entry point of the actuator container: wiring only (python -m services.actuator)."""

from __future__ import annotations

import sys

from services.actuator.kube import KubeActuator
from services.actuator.metrics import ActuatorMetrics
from services.actuator.plan import PlanSettings
from services.actuator.servicer import SERVICE_NAME, ActuatorServicer, register
from services.runtime.config import Config
from services.runtime.grpcserve import serve
from services.runtime.startup import kube_client, listening, run_service

SUMMARY = ("The Inferno actuator: gRPC ActuatorService applying the optimizer's plan to the managed\n"
           "Deployments (replicas, accelerator node selector; dry run with INFERNO_DRY_RUN), with its own\n"
           "/metrics. Needs a Kubernetes configuration: in-cluster, else KUBECONFIG or ~/.kube/config.")


def start(config: Config) -> None:
    """Build the kube client, serve /metrics and the gRPC service until SIGTERM."""
    settings = PlanSettings(config.max_replica_change, config.accelerator_node_labels, config.set_max_num_seqs,
                            config.scale_down_stabilization_s, config.max_replicas)
    api = kube_client()
    metrics = ActuatorMetrics()
    with listening(f"{config.http_bind_address}:{config.actuator_metrics_port}", "INFERNO_HTTP_BIND_ADDRESS",
                   "INFERNO_ACTUATOR_METRICS_PORT"):
        metrics.serve(config.http_bind_address, config.actuator_metrics_port)
    servicer = ActuatorServicer(KubeActuator(api, settings), metrics, force_dry_run=config.dry_run)
    address = f"{config.bind_address}:{config.actuator_port}"
    with listening(address, "INFERNO_BIND_ADDRESS", "INFERNO_ACTUATOR_PORT"):
        serve(register(servicer), [SERVICE_NAME], address, grace_s=config.shutdown_grace_s, component="actuator",
              health_address=config.health_address(config.actuator_health_port))


if __name__ == "__main__":
    sys.exit(run_service(sys.argv[1:], prog="python -m services.actuator", summary=SUMMARY,
                         ports={"gRPC ActuatorService": "INFERNO_ACTUATOR_PORT",
                                "/metrics": "INFERNO_ACTUATOR_METRICS_PORT"}, start=start))
