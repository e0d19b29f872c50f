"""The four inferno services as separate processes on loopback ports, as the demo and the end-to-end tests run
them: ``python -m services.<name>`` each, configured only through the environment (services/runtime/config.py),
talking gRPC to each other; each one's output goes to ``<workdir>/<name>.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from harness.scenario import ROOT

NAMES = ("optimizer", "collector", "actuator", "controller")

ON_DEMAND = {"INFERNO_CONTROL_PERIOD": "0", "INFERNO_FORECAST": "off", "INFERNO_FAST_PATH": "off"}
"""Control settings for tests that drive the cycles themselves (GET /invoke): no timer, so no fast path, and each
cycle sizes for the load measured then (issue 22's forecast off)."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcesses:
    """Starts, stops, kills and restarts the four services; calls the controller's HTTP API.

    ``env`` holds the settings common to all four (KUBECONFIG, INFERNO_DATA_PATH, INFERNO_PROMETHEUS_URL, ...);
    ``control`` the control loop's (ON_DEMAND by default; {} = the production defaults of docs/contract.md),
    applied under ``env``; ports and peer addresses are chosen here. Raises RuntimeError when a service does not
    come up.
    """

    def __init__(self, workdir: str, env: Mapping[str, str], control: Mapping[str, str] = ON_DEMAND) -> None:
        self.workdir = workdir
        self.ports = {name: free_port() for name in NAMES}
        self.ports["actuator_metrics"] = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("INFERNO_", "KUBERNETES_SERVICE"))}
        self.env = {**base, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", "INFERNO_BIND_ADDRESS": "127.0.0.1",
                    "INFERNO_HTTP_BIND_ADDRESS": "127.0.0.1", **dict(control), **dict(env)}
        for name in ("optimizer", "collector", "actuator"):
            self.env[f"INFERNO_{name.upper()}_PORT"] = str(self.ports[name])
            self.env[f"INFERNO_{name.upper()}_ADDRESS"] = f"127.0.0.1:{self.ports[name]}"
        self.env["INFERNO_CONTROLLER_PORT"] = str(self.ports["controller"])
        self.env["INFERNO_ACTUATOR_METRICS_PORT"] = str(self.ports["actuator_metrics"])
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def controller_url(self) -> str:
        """The controller's base URL."""
        return f"http://127.0.0.1:{self.ports['controller']}"

    def log_path(self, name: str) -> str:
        """Where ``name``'s output goes."""
        return os.path.join(self.workdir, f"{name}.log")

    def log_tail(self, name: str, lines: int = 3) -> str:
        """The last lines of ``name``'s log, joined (for error messages)."""
        try:
            with open(self.log_path(name), encoding="utf-8", errors="replace") as handle:
                return " | ".join(line.strip() for line in handle.readlines()[-lines:])
        except OSError as err:
            return str(err)

    def start(self, timeout_s: float = 60.0) -> ServiceProcesses:
        """Start all four and wait until the controller reports the three gRPC services SERVING."""
        for name in NAMES:
            self.start_one(name)
        self.wait_ready(timeout_s)
        return self

    def start_one(self, name: str) -> None:
        """Start (or restart) one service."""
        with open(self.log_path(name), "ab") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=self.env,
                                                stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until GET /readyz answers 200; returns its body. RuntimeError naming the services that are not
        serving (and any that exited) when the time runs out."""
        end = time.monotonic() + timeout_s
        body: dict[str, Any] = {}
        while time.monotonic() < end:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            status, body = self.get("/readyz", timeout_s=5.0)
            if status == 200:
                return body
            time.sleep(0.3)
        raise RuntimeError(f"services not ready after {timeout_s:.0f} s: {body}")

    def get(self, path: str, timeout_s: float = 120.0) -> tuple[int, dict[str, Any]]:
        """GET a controller path; (HTTP status, JSON body), or (0, {"error": ...}) when it cannot be reached."""
        try:
            with urllib.request.urlopen(self.controller_url + path, timeout=timeout_s) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
        except (OSError, ValueError) as err:
            return 0, {"error": str(err)}

    def invoke(self, timeout_s: float = 120.0) -> tuple[int, dict[str, Any]]:
        """GET /invoke: one control cycle; (200 applied | 503 skipped, the cycle record)."""
        return self.get("/invoke", timeout_s)

    def kill(self, name: str) -> None:
        """SIGKILL one service (a crash) and reap it."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(10)

    def stop(self, grace_s: float = 10.0) -> dict[str, int | None]:
        """SIGTERM every running service (controller first), SIGKILL after ``grace_s``; their exit codes."""
        for name in reversed(NAMES):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + grace_s
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(end - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(5)
        return codes

    def __enter__(self) -> ServiceProcesses:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
