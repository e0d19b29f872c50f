"""The command lines of the entry points: -h/--help (exit 0), a bad argument (exit 2), and start-up failures
the user can fix (a bad setting, no Kubernetes configuration, a port in use) as one line on stderr (exit 1),
never a traceback. Subprocesses on 127.0.0.1 only; services.runtime.startup tested in-process too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from services.core.errors import UnavailableError
from services.runtime.config import VARIABLES, Config, load_config
from services.runtime.startup import StartupError, default_text, environment_text, listening, run_service

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT_VARIABLE = {"controller": "INFERNO_CONTROLLER_PORT", "collector": "INFERNO_COLLECTOR_PORT",
                 "actuator": "INFERNO_ACTUATOR_PORT"}
SERVICES = sorted(PORT_VARIABLE)


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without any INFERNO_ setting or in-cluster Kubernetes hint, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("INFERNO_") and not k.startswith("KUBERNETES_") and k != "KUBECONFIG"}
    env.update(PYTHONPATH=ROOT, INFERNO_BIND_ADDRESS="127.0.0.1", INFERNO_HTTP_BIND_ADDRESS="127.0.0.1", **extra)
    return env


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=_env(**extra), capture_output=True,
                          text=True, timeout=60)


def _one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_usage_with_the_port_and_the_variables(service: str, flag: str) -> None:
    done = _run([f"services.{service}", flag])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"usage: python -m services.{service}")
    assert f"{PORT_VARIABLE[service]} (default {getattr(Config(), VARIABLES[PORT_VARIABLE[service]][0])})" \
        in done.stdout
    for variable in VARIABLES:
        assert variable in done.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_an_argument_is_a_usage_error(service: str) -> None:
    done = _run([f"services.{service}", "--port", "1"])
    assert done.returncode == 2
    assert "unrecognized arguments: --port 1" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [*[[f"services.{s}"] for s in SERVICES], ["services.optimizer", "serve"]],
                         ids=[*SERVICES, "optimizer"])
def test_a_bad_setting_is_one_line_naming_the_variable(command: list[str]) -> None:
    done = _run(command, INFERNO_LOG_LEVEL="loud")
    assert done.returncode == 1
    line = _one_clean_line(done.stderr)
    assert "INFERNO_LOG_LEVEL='loud'" in line
    assert "must be one of debug, info, warning, error" in line


@pytest.mark.parametrize("service", ["collector", "actuator"])
def test_no_kubernetes_configuration_is_one_line(service: str, tmp_path) -> None:
    missing = str(tmp_path / "no-such-kubeconfig")
    done = _run([f"services.{service}"], KUBECONFIG=missing)
    assert done.returncode == 1
    line = _one_clean_line(done.stderr)
    assert "no Kubernetes configuration found" in line
    assert f"KUBECONFIG={missing!r} names no existing file" in line


def test_controller_port_in_use_is_one_line_naming_the_variable(busy_port: int, tmp_path) -> None:
    done = _run(["services.controller"], INFERNO_CONTROLLER_PORT=str(busy_port),
                INFERNO_CYCLE_LOG=str(tmp_path / "cycles.jsonl"))
    assert done.returncode == 1
    line = _one_clean_line(done.stderr)
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line
    assert "INFERNO_CONTROLLER_PORT" in line


def test_optimizer_serve_port_in_use_fails_without_a_traceback(busy_port: int) -> None:
    done = _run(["services.optimizer", "serve"], INFERNO_OPTIMIZER_PORT=str(busy_port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # gRPC's own log line with the OS reason may come before
    assert f"cannot listen on 127.0.0.1:{busy_port}" in last
    assert "INFERNO_OPTIMIZER_PORT" in last


def test_bench_help_lists_the_benchmarks() -> None:
    done = _run(["bench", "--help"])
    assert done.returncode == 0, done.stderr
    for name in ("optimizer", "cycle", "emulator"):
        assert any(line.split()[:1] == [name] for line in done.stdout.splitlines()), done.stdout


def test_bench_unknown_name_is_a_usage_error() -> None:
    done = _run(["bench", "nope"])
    assert done.returncode == 2
    assert "unknown benchmark(s) nope" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("variable", list(VARIABLES))
def test_each_shown_default_is_the_config_default(variable: str) -> None:
    text = default_text(variable).removesuffix(" s").removesuffix(" bytes")
    assert load_config({variable: "" if text == '""' else text}) == Config()
    assert f"{variable} " in environment_text()


@pytest.fixture
def no_logging_setup(monkeypatch):
    """run_service in this process must not point structlog at pytest's captured stdout (closed afterwards)."""
    monkeypatch.setattr("services.runtime.startup.configure_logging", lambda level: None)


def test_run_service_turns_domain_errors_into_one_line(capsys, no_logging_setup) -> None:
    def start(_config: Config) -> None:
        raise UnavailableError("the API is down")

    assert run_service([], prog="svc", summary="s", ports={"gRPC": "INFERNO_OPTIMIZER_PORT"}, start=start,
                       environ={}) == 1
    assert capsys.readouterr().err == "svc: error: the API is down\n"


def test_run_service_help_and_bad_argument_exit_like_argparse(capsys, no_logging_setup) -> None:
    def start(_config: Config) -> None:
        raise AssertionError("must not start")

    for argv, status in (["--help"], 0), (["extra"], 2):
        with pytest.raises(SystemExit) as exited:
            run_service(argv, prog="svc", summary="s", ports={"gRPC": "INFERNO_OPTIMIZER_PORT"}, start=start)
        assert exited.value.code == status
    assert "INFERNO_OPTIMIZER_PORT (default 3302)" in capsys.readouterr().out


def test_listening_names_the_variables_and_lets_other_errors_through() -> None:
    with pytest.raises(StartupError, match=r"cannot listen on 127.0.0.1:1 \(check INFERNO_X\): denied"):
        with listening("127.0.0.1:1", "INFERNO_X"):
            raise PermissionError("denied")
    with pytest.raises(RuntimeError, match="unrelated"):
        with listening("127.0.0.1:1", "INFERNO_X"):
            raise RuntimeError("unrelated")


def test_controller_with_an_unwritable_cycle_log_is_one_line_naming_the_variable(tmp_path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "cycles.jsonl"
    done = _run(["services.controller"], INFERNO_CYCLE_LOG=str(path), INFERNO_CONTROLLER_PORT="0")
    assert done.returncode == 1
    line = _one_clean_line(done.stderr)
    assert f"cannot write {path}" in line and "INFERNO_CYCLE_LOG" in line
