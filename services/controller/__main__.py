"""Controller entry point: wiring only (config, logging, clients, loop, HTTP API, ticker, signals)."""

import os
import signal
import threading

from services.common.config import load_config
from services.common.logs import configure_logging, get_logger
from services.controller.clients import ServiceClients
from services.controller.httpapi import ControllerHTTP
from services.controller.loop import ControlLoop, static_loader
from services.controller.metrics import ControllerMetrics

config = load_config(os.environ)
configure_logging(config.log_level)
clients = ServiceClients({"collector": config.collector_address, "optimizer": config.optimizer_address,
                          "actuator": config.actuator_address}, config.grpc_deadline_s, config.watch_namespaces)
metrics = ControllerMetrics()
loop = ControlLoop(clients, static_loader(config.data_path), metrics, config.cycle_log_path, config.dry_run,
                   config.cycle_log_max_bytes)
http = ControllerHTTP(loop, metrics, clients.health, config.bind_address, config.controller_port)
http.start()
loop.start_ticker(config.control_period_s)
get_logger("controller").info("controller_started", port=http.port, period_s=config.control_period_s)
stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stop.set())
stop.wait()
loop.stop(config.shutdown_grace_s)
http.stop()
clients.close()
get_logger("controller").info("controller_stopped")
