"""The whole product on the local cluster for the end-to-end tests: one stack per module (starting it costs
~15 s), a short version of the demo's scenario (harness/scenario.py): the stepped server's load triples 10 s
after the load starts; the collector averages over 30 s as in the demo (shorter windows make the
token averages too noisy at 0.5 req/s: prompt tokens count at admission, requests at completion). The servers
carry the sample's mean targets only: the demo's P90 targets (checked by the demo and by
tests/optimizer/test_demo_percentiles.py) sit close to what batch 3 gives at the load these tests hold, so the
batch decided follows the measured output length (64 or 64.6 tokens -> batch 3 or 4, a label patch), and the
fault tests count the patches exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.scenario import SERVERS, Scenario
from harness.stack import Stack

E2E_SCENARIO = replace(Scenario(), servers=tuple(replace(s, ttft_p90_ms=0.0, itl_p90_ms=0.0) for s in SERVERS),
                       step_at_s=10.0, window_s=30, duration_s=600.0, startup_delay_s=2.0)


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
