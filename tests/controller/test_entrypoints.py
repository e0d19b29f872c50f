"""Each service's entry point refuses a bad setting at start: non-zero exit, message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("service", ["controller", "collector", "optimizer", "actuator"])
def test_bad_setting_fails_at_start_naming_the_variable(service):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERNO_")}
    env.update(PYTHONPATH=ROOT, INFERNO_GRPC_DEADLINE="soon")
    done = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "INFERNO_GRPC_DEADLINE='soon'" in done.stderr, done.stderr
