"""The whole product on the local cluster: emulated Kubernetes API, vLLM replicas and Prometheus (emulator/),
the optimizer's static data files, and the four services as processes. Used by the demo and the end-to-end
tests."""

from __future__ import annotations

import os
import shutil
import tempfile

from emulator.cluster import Cluster
from harness.scenario import NAMESPACE, Scenario, cluster_config, static_system, write_static_data
from harness.services import ON_DEMAND, ServiceProcesses


class Stack:
    """Start the cluster (Prometheus when wanted and installed, else the collector scrapes the replicas
    directly), write the data files, start the services. ``workdir`` (created when None) holds the data files,
    the cycle log, the services' logs and the cluster's files; it is removed by stop(keep=False). ``control``:
    the control loop's settings (harness.services.ON_DEMAND: cycles only on GET /invoke; the demo passes its
    timer and fast-path settings), ``extra_env`` any other."""

    def __init__(self, scenario: Scenario, workdir: str | None = None, prometheus: bool = True,
                 extra_env: dict[str, str] | None = None, control: dict[str, str] | None = None) -> None:
        self.scenario = scenario
        self.workdir = workdir or tempfile.mkdtemp(prefix="inferno-demo-")
        self.system = static_system(scenario)
        self.data_path = os.path.join(self.workdir, "data")
        self.cycle_log_path = os.path.join(self.workdir, "cycles.jsonl")
        self.cluster = Cluster(cluster_config(scenario, self.system, prometheus), prometheus=prometheus,
                               workdir=os.path.join(self.workdir, "cluster"))
        self._extra_env = dict(extra_env or {})
        self._control = dict(ON_DEMAND if control is None else control)
        self.services: ServiceProcesses | None = None

    def start(self, ready_timeout_s: float = 90.0) -> Stack:
        """Start everything and wait until the Deployments are ready and the services serve; stops what it
        started and re-raises when something fails."""
        try:
            write_static_data(self.scenario, self.data_path)
            os.makedirs(self.cluster.workdir, exist_ok=True)
            self.cluster.start(wait_ready_s=ready_timeout_s)
            self.services = ServiceProcesses(self.workdir, self.env(), self._control).start(ready_timeout_s)
        except BaseException:
            self.stop(keep=True)
            raise
        return self

    def env(self) -> dict[str, str]:
        """The settings the four services share."""
        env = {"KUBECONFIG": self.cluster.kubeconfig_path, "INFERNO_DATA_PATH": self.data_path,
               "WATCH_NAMESPACE": NAMESPACE, "INFERNO_PROMETHEUS_WINDOW": f"{self.scenario.window_s}s",
               "INFERNO_CYCLE_LOG": self.cycle_log_path, "INFERNO_GRPC_DEADLINE": "20",
               "INFERNO_SHUTDOWN_GRACE": "2", "INFERNO_LOG_LEVEL": "info"}
        if self.cluster.prometheus_url:
            env["INFERNO_PROMETHEUS_URL"] = self.cluster.prometheus_url
        return {**env, **self._extra_env}

    def deployment(self, name: str) -> dict:
        """The current Deployment object of server ``name`` (from the emulated API's store)."""
        return self.cluster.store.get("apps/v1", "deployments", NAMESPACE, self.scenario.server(name).deployment)

    def replicas(self) -> dict[str, int]:
        """spec.replicas of every server's Deployment."""
        return {s.name: int(self.deployment(s.name)["spec"]["replicas"]) for s in self.scenario.servers}

    def waiting(self, name: str) -> int:
        """Requests waiting (queued, not yet in a batch) over all replicas of server ``name``."""
        servers = self.cluster.reconciler.servers(NAMESPACE, self.scenario.server(name).deployment)
        return sum(server.metrics.waiting for server in servers)

    def stop(self, keep: bool = False) -> None:
        """Stop the services, then the cluster; remove the work directory unless ``keep``."""
        if self.services is not None:
            self.services.stop()
        self.cluster.stop()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
