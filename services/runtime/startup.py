"""The start of a service's entry point (``python -m services.X``): its command line and its start-up errors.

The services take no arguments: ``-h/--help`` prints what the service does, where it listens and every
environment variable of services.runtime.config.VARIABLES with its default (generated, so it cannot drift);
any other argument is a usage error (exit 2). A start-up failure the user can fix (a bad setting, no
Kubernetes configuration, a port that cannot be bound) is one line on stderr and exit 1, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from services.core.errors import InfernoError, UnavailableError
from services.runtime.config import VARIABLES, Config, load_config
from services.runtime.logs import configure_logging

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_UNITS = {"_s": "s", "_bytes": "bytes"}
"""Field-name suffix -> unit shown after the default."""


class StartupError(InfernoError):
    """The service cannot start for a reason the user can fix; the message names it (and the variable)."""


def default_text(variable: str) -> str:
    """The default of ``variable`` as it would be written in the environment, with its unit if any."""
    name = VARIABLES[variable][0]
    spec = next(f for f in dataclasses.fields(Config) if f.name == name)
    value: Any = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, tuple):
        text = ",".join(value)
    elif isinstance(value, Mapping):
        text = json.dumps(dict(value))
    else:
        text = str(value)
    if text == "":
        return '""'
    unit = next((u for suffix, u in _UNITS.items() if name.endswith(suffix)), "")
    return f"{text} {unit}" if unit else text


def environment_text() -> str:
    """The table of every variable the services read, with its default."""
    width = max(len(v) for v in VARIABLES)
    lines = [f"  {variable:<{width}}  {default_text(variable)}" for variable in VARIABLES]
    return ("environment (all four services read and check the same variables; shown with defaults):\n"
            + "\n".join(lines))


def usage_parser(prog: str, summary: str, ports: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser of a service's command line: only -h/--help; ``ports`` maps what is served to its variable."""
    listens = "\n".join(f"  {what}: port {variable} (default {default_text(variable)})"
                        for what, variable in ports.items())
    description = (f"{summary}\n\nlistens (gRPC on INFERNO_BIND_ADDRESS, default "
                   f"{default_text('INFERNO_BIND_ADDRESS')}; HTTP, metrics and health ports on "
                   f"INFERNO_HTTP_BIND_ADDRESS, default {default_text('INFERNO_HTTP_BIND_ADDRESS')}):\n{listens}")
    return argparse.ArgumentParser(prog=prog, description=description, epilog=environment_text(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run_service(argv: Sequence[str], *, prog: str, summary: str, ports: Mapping[str, str],
                start: Callable[[Config], None], environ: Mapping[str, str] = os.environ) -> int:
    """Parse ``argv`` (-h/--help: usage, exit 0; anything else: usage error, exit 2, both via SystemExit),
    load the config, configure logging and run ``start(config)`` (blocking until the service stops).

    Returns 0, or 1 after one line ``prog: error: ...`` on stderr when the start fails with a domain error
    (ConfigError naming the variable, UnavailableError, StartupError).
    """
    usage_parser(prog, summary, ports).parse_args(list(argv))
    try:
        config = load_config(environ)
        configure_logging(config.log_level)
        start(config)
    except InfernoError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def listening(address: str, *variables: str) -> Iterator[None]:
    """Turn a failure to bind ``address`` inside the block (OSError, or the RuntimeError gRPC raises) into a
    StartupError naming the address and the ``variables`` that set it."""
    where = f"cannot listen on {address} (check {', '.join(variables)})"
    try:
        yield
    except OSError as err:
        raise StartupError(f"{where}: {err}") from err
    except RuntimeError as err:  # gRPC logs the OS reason itself, on the line before
        if "bind" not in str(err).lower():
            raise
        raise StartupError(f"{where}: the port is in use or the address is not local") from err


def writable_file(path: str, variable: str) -> None:
    """Create ``path``'s directory and open ``path`` for appending (creating nothing else), or raise a
    StartupError naming ``variable`` and the OS reason."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise StartupError(f"cannot write {path} (check {variable}; empty disables it): "
                           f"{err.strerror or err}") from err


def kube_client(environ: Mapping[str, str] = os.environ) -> ApiClient:
    """The Kubernetes ApiClient (services.runtime.kube.load_api_client); when there is no configuration, a
    StartupError saying where it was looked for (in-cluster, then KUBECONFIG or ~/.kube/config)."""
    from services.runtime.kube import load_api_client

    try:
        return load_api_client()
    except UnavailableError as err:
        value = environ.get("KUBECONFIG", "")
        paths = [path for path in value.split(os.pathsep) if path]
        if not paths:
            where = "KUBECONFIG is unset and ~/.kube/config is missing or unusable"
        elif not any(os.path.exists(path) for path in paths):
            where = f"KUBECONFIG={value!r} names no existing file"
        else:
            where = f"KUBECONFIG={value!r}"
        raise StartupError(f"{err} (not running in a pod; {where})") from err
