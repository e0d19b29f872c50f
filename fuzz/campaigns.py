"""The campaigns and their sizes: SHORT runs in `make test` (tests/fuzz), LONG in `make fuzz`."""

from __future__ import annotations

from collections.abc import Callable

from fuzz import datafiles, grpc_actuator, grpc_collector, grpc_optimizer
from fuzz.figures import Figures

TARGETS: dict[str, Callable[[int, int, float], Figures]] = {
    "datafiles": datafiles.run,
    "optimizer": grpc_optimizer.run,
    "collector": grpc_collector.run,
    "actuator": grpc_actuator.run,
}
"""Campaign name -> run(seed, cases, budget_s)."""
SHORT = {"datafiles": 60, "optimizer": 80, "collector": 40, "actuator": 40}
"""Cases per campaign in the short form (a few seconds each)."""
LONG = {"datafiles": 4000, "optimizer": 4000, "collector": 1500, "actuator": 1500}
"""Cases per campaign in the long form (minutes)."""
