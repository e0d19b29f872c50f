"""The optimizer's extra pure modules import no I/O client either (fresh interpreter per module)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = ("import sys, importlib; importlib.import_module({module!r}); "
         "print([m for m in ('grpc', 'kubernetes', 'prometheus_api_client') if m in sys.modules])")


@pytest.mark.parametrize("module", ["services.optimizer.servicetime", "services.optimizer.candidates",
                                    "services.optimizer.synthetic", "services.optimizer.table"])
def test_pure_optimizer_module_imports_no_io_client(module: str) -> None:
    out = subprocess.run([sys.executable, "-c", CHECK.format(module=module)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
