"""The pure core never imports grpc, kubernetes or prometheus clients (checked in a fresh interpreter)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = [
    "services.common.model", "services.common.datafiles", "services.common.errors",
    "services.optimizer.queueing", "services.optimizer.sizing", "services.optimizer.solver",
    "services.collector.aggregate", "services.actuator.plan", "services.controller.cycle",
]
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
