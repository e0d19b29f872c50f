"""The whole product on the local cluster for the end-to-end tests: one stack per module (starting it costs
~15 s), a short version of the demo's scenario (harness/scenario.py): the stepped server's load triples 10 s
after the load starts; the collector averages over 30 s as in the demo (shorter windows make the
token averages too noisy at 0.5 req/s: prompt tokens count at admission, requests at completion)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.scenario import Scenario
from harness.stack import Stack

E2E_SCENARIO = replace(Scenario(), step_at_s=10.0, window_s=30, duration_s=600.0, startup_delay_s=2.0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A started Stack with the load running (``stack.cluster.load``), at most one replica changed per Deployment
    and cycle (INFERNO_MAX_REPLICA_CHANGE=1) and no scale-down stabilization window (so that each test sees
    the one rule it is about; the window has its own tests in tests/actuator); stopped afterwards."""
    started = Stack(E2E_SCENARIO, workdir=str(tmp_path_factory.mktemp("e2e")),
                    extra_env={"INFERNO_MAX_REPLICA_CHANGE": "1", "INFERNO_SCALE_DOWN_STABILIZATION": "0"}).start()
    started.cluster.start_load(seed=2)
    yield started
    started.stop(keep=True)
