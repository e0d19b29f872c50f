"""Controller entry point: wiring only (config, logging, clients, loop, HTTP API, ticker, signals)."""

import signal
import sys
import threading

from services.controller import history
from services.controller.clients import ServiceClients
from services.controller.fastpath import FastPathSettings
from services.controller.httpapi import ControllerHTTP, invoke_token_reader
from services.controller.loop import ControlLoop, static_loader
from services.controller.metrics import ControllerMetrics
from services.controller.watch import FastPathWatcher
from services.perfmodel.tuner import Tuner, TunerMode
from services.runtime.config import Config
from services.runtime.logs import get_logger
from services.runtime.startup import listening, run_service, writable_file

SUMMARY = ("The Inferno controller: every INFERNO_CONTROL_PERIOD seconds one cycle reads the static data\n"
           "(INFERNO_DATA_PATH), asks the collector, optimizer and actuator services over gRPC, and logs the\n"
           "cycle; GET /invoke runs one now. Stops on SIGTERM/SIGINT.\n"
           "`python -m services.controller history [--cycle-log FILE] [--server NAME]` prints the decisions of\n"
           "the cycle log over time (history --help).")


def start(config: Config) -> None:
    """Build the clients, loop and HTTP API, tick until SIGTERM or SIGINT, then stop them."""
    clients = ServiceClients({"collector": config.collector_address, "optimizer": config.optimizer_address,
                              "actuator": config.actuator_address}, config.grpc_deadline_s, config.watch_namespaces)
    if config.cycle_log_path:
        writable_file(config.cycle_log_path, "INFERNO_CYCLE_LOG")
    metrics = ControllerMetrics()
    loop = ControlLoop(clients, static_loader(config.data_path), metrics, config.cycle_log_path, config.dry_run,
                       config.cycle_log_max_bytes, Tuner(TunerMode(config.tuner)))
    with listening(f"{config.http_bind_address}:{config.controller_port}", "INFERNO_HTTP_BIND_ADDRESS",
                   "INFERNO_CONTROLLER_PORT"):
        http = ControllerHTTP(loop, metrics, clients.health, config.http_bind_address, config.controller_port,
                              invoke_token=invoke_token_reader(config.invoke_token_path))
    http.start()
    loop.start_ticker(config.control_period_s)
    watcher = None
    if config.fast_path and config.control_period_s > 0:  # 0: cycles only on /invoke, none of its own
        window = f"{max(int(config.fast_path_window_s), 1)}s"
        watcher = FastPathWatcher(loop, lambda: clients.collect(loop.static, window, forecast=False).value,
                                  FastPathSettings(config.fast_path_waiting_per_replica,
                                                   config.fast_path_kv_cache_usage, config.fast_path_ratio,
                                                   config.fast_path_cooldown_s), config.fast_path_interval_s, window)
        watcher.start()
    get_logger("controller").info("controller_started", port=http.port, period_s=config.control_period_s)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    if watcher is not None:
        watcher.stop(config.shutdown_grace_s)
    loop.stop(config.shutdown_grace_s)
    http.stop()
    clients.close()
    get_logger("controller").info("controller_stopped")


if __name__ == "__main__" and sys.argv[1:2] == ["history"]:
    sys.exit(history.main(sys.argv[2:]))
elif __name__ == "__main__":
    sys.exit(run_service(sys.argv[1:], prog="python -m services.controller", summary=SUMMARY,
                         ports={"HTTP API (/invoke, /healthz, /readyz, /metrics)": "INFERNO_CONTROLLER_PORT"},
                         start=start))
