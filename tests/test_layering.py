"""The pure core never imports grpc, kubernetes or prometheus clients (checked in a fresh interpreter), and its
source never reads the environment or the clock (checked on the syntax tree: the callers inject both)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = [
    "services.core.model", "services.core.datafiles", "services.core.datafields", "services.core.errors",
    "services.core.inferno_json", "services.core.bounds", "services.core.redact", "services.runtime.convert",
    "services.optimizer.queueing", "services.optimizer.sizing", "services.optimizer.solver",
    "services.optimizer.servicetime", "services.optimizer.candidates", "services.optimizer.fit",
    "services.optimizer.exact", "services.optimizer.robust", "services.optimizer.llmro_instance",
    "services.optimizer.llmro_model",
    "services.optimizer.tuner",
    "services.collector.aggregate", "services.collector.lengths", "services.core.labels", "services.collector.promql",
    "services.actuator.plan", "services.actuator.stabilize", "services.controller.cycle",
    "services.collector.forecast",
]
ENV_AND_CLOCK = {"environ", "getenv", "putenv", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                 "perf_counter_ns", "now", "utcnow", "today", "sleep"}
"""Attributes whose use reads the environment or the clock (os.environ, time.monotonic(), datetime.now(), ...)."""
FORBIDDEN = ("grpc", "kubernetes", "prometheus_api_client", "prometheus_client")
PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})))
"""


def _present(module: str) -> bool:
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_client(module: str) -> None:
    if not _present(module):
        pytest.fail(f"pure module {module} is missing")
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
