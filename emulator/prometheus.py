"""A real Prometheus server for the local cluster, scraping the emulated replicas through file-based discovery.

When the ``prometheus`` binary exists (Debian package), PrometheusRunner writes a config whose only job reads
its targets from a file_sd JSON file, starts the server on a free 127.0.0.1 port with a temporary TSDB
directory, waits until it is ready, and kills it on stop. The reconciler rewrites the targets file atomically
(write_file_sd) on every pod change; each target carries the labels ``namespace``, ``pod`` and
``deployment``, so the collector can select by namespace and pod.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable

import requests

SD_FILE = "targets.json"


def prometheus_binary() -> str | None:
    """The path of the ``prometheus`` executable, or None when it is not installed."""
    return shutil.which("prometheus")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sd_target(port: int, labels: dict[str, str]) -> dict:
    """One file_sd target group: 127.0.0.1:port with ``labels``."""
    return {"targets": [f"127.0.0.1:{port}"], "labels": dict(labels)}


def write_file_sd(path: str, groups: Iterable[dict]) -> None:
    """Replace the file_sd JSON file at ``path`` atomically (write a sibling, then rename over it)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sd-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(list(groups), handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def render_config(sd_path: str, scrape_interval_s: float, refresh_interval_s: float) -> str:
    """The prometheus.yml text: one job ``vllm`` discovering its targets from ``sd_path``."""
    every = _duration(scrape_interval_s)
    discovery = {"files": [sd_path], "refresh_interval": _duration(refresh_interval_s)}
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every, "scrape_timeout": every},
        "scrape_configs": [{"job_name": "vllm", "metrics_path": "/metrics", "file_sd_configs": [discovery]}],
    }
    return json.dumps(config, indent=1)  # JSON is YAML


def _duration(seconds: float) -> str:
    """A Prometheus duration (integer units): 1 -> "1s", 0.5 -> "500ms"."""
    ms = max(round(seconds * 1000), 1)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class PrometheusRunner:
    """Start, query and stop one Prometheus process; ``sd_path`` is the targets file the reconciler keeps."""

    def __init__(self, workdir: str | None = None, scrape_interval_s: float = 1.0, refresh_interval_s: float = 1.0,
                 binary: str | None = None) -> None:
        self.binary = binary or prometheus_binary()
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="inferno-prometheus-")
        self.sd_path = os.path.join(self.workdir, SD_FILE)
        self.scrape_interval_s, self.refresh_interval_s = scrape_interval_s, refresh_interval_s
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> PrometheusRunner:
        """Write the config (and an empty targets file if none), start the server, wait until it is ready."""
        if not self.binary:
            raise FileNotFoundError("the prometheus binary is not installed")
        if not os.path.exists(self.sd_path):
            write_file_sd(self.sd_path, [])
        config_path = os.path.join(self.workdir, "prometheus.yml")
        with open(config_path, "w") as handle:
            handle.write(render_config(self.sd_path, self.scrape_interval_s, self.refresh_interval_s))
        self.port = free_port()
        self._log = open(os.path.join(self.workdir, "prometheus.log"), "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [self.binary, f"--config.file={config_path}", f"--storage.tsdb.path={self.workdir}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not self._wait(lambda: requests.get(self.url + "/-/ready", timeout=1).ok, timeout_s):
            self.stop()
            raise TimeoutError(f"prometheus not ready within {timeout_s} s (log in {self.workdir})")
        return self

    def query(self, promql: str) -> list[dict]:
        """Instant query; the ``result`` list of the API answer."""
        answer = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def wait_targets_up(self, count: int, timeout_s: float = 30.0) -> bool:
        """Wait until at least ``count`` targets have ``up == 1``; True when they have."""
        def ready() -> bool:
            result = self.query("count(up == 1)")
            return bool(result) and float(result[0]["value"][1]) >= count
        return self._wait(ready, timeout_s)

    def stop(self) -> None:
        """Terminate the server (kill after 10 s) and remove the work directory if we made it."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait(self, check, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self._process is not None and self._process.poll() is not None:
                return False
            try:
                if check():
                    return True
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.2)
        return False
