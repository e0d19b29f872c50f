"""Layering, checked by package: services/core is pure throughout; in every other package under services/ each
module is pure except the I/O edges named below (where gRPC, Kubernetes, Prometheus, the clock and the
environment are met), so a new module is held to the pure rule unless it is declared an edge. Pure means: never
imports grpc, kubernetes or prometheus clients (checked in a fresh interpreter) and never reads the environment
or the clock (checked on the syntax tree: the callers inject both). And the services never import each other:
only the shared packages (SHARED) and their own package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"
SHARED = ("core", "runtime", "perfmodel")
"""Packages every service may import. runtime and perfmodel (the performance model: service time, queueing, fit,
online tuner; used by the optimizer and, for the tuner, the controller) import only core; core only itself."""
IO_EDGES = {
    "core": set(),
    "perfmodel": set(),
    "runtime": {"config", "grpcserve", "kube", "logs", "startup"},
    "collector": {"__main__", "servicer", "collect", "sources", "prometheus_source", "scrape_source", "capacity"},
    "optimizer": {"__main__", "servicer", "cli", "llmro_cli"},
    "actuator": {"__main__", "servicer", "kube", "metrics", "events", "pools"},
    "controller": {"__main__", "clients", "httpapi", "loop", "metrics", "history", "watch"},
}
"""Per package under services/: the modules allowed to do I/O (every other module must be pure)."""
ENV_AND_CLOCK = {"environ", "getenv", "putenv", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                 "perf_counter_ns", "now", "utcnow", "today", "sleep"}
"""Attributes whose use reads the environment or the clock (os.environ, time.monotonic(), datetime.now(), ...)."""
FORBIDDEN = ("grpc", "kubernetes", "prometheus_api_client", "prometheus_client")
PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})))
"""


def _packages() -> list[str]:
    return sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists())


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (SERVICES / package).rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


PURE = [_dotted(path) for package in _packages() for path in _modules(package)
        if path.stem not in IO_EDGES.get(package, set())]


def test_every_service_package_is_classified_and_its_edges_exist() -> None:
    assert set(_packages()) == set(IO_EDGES), "a new package under services/ needs its I/O edges declared"
    missing = [f"{package}.{edge}" for package, edges in IO_EDGES.items() for edge in edges
               if not (SERVICES / package / f"{edge}.py").exists()]
    assert missing == [], f"declared I/O edges that do not exist: {missing}"
    assert "services.core.model" in PURE and "services.runtime.convert" in PURE


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_client(module: str) -> None:
    probe = PROBE.format(forbidden=set(FORBIDDEN))
    result = subprocess.run([sys.executable, "-c", probe, module], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"


@pytest.mark.parametrize("module", PURE)
def test_pure_module_reads_neither_env_nor_clock(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    uses = [f"line {node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in ENV_AND_CLOCK]
    imports = [f"line {node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module in ("os", "time", "datetime")
               and any(alias.name in ENV_AND_CLOCK for alias in node.names)]
    assert uses + imports == [], f"{module} reads the env or the clock: {uses + imports}"


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("services.")}


@pytest.mark.parametrize("package", [p for p in IO_EDGES])
def test_a_package_imports_only_its_own_modules_and_the_shared_ones(package: str) -> None:
    allowed = {package, "core"} if package in SHARED else {package, *SHARED}
    if package == "core":
        allowed = {"core"}
    found = {(path, name) for path in _modules(package) for name in _imported(path)}
    wrong = sorted(f"{path.relative_to(ROOT)}: {name}" for path, name in found if name.split(".")[1] not in allowed)
    assert wrong == [], f"services.{package} imports another package: {wrong}"
