"""The campaigns and their sizes: SHORT runs in `make test` (tests/fuzz), LONG in `make fuzz`."""

from __future__ import annotations

from collections.abc import Callable

from fuzz import datafiles, grpc_optimizer
from fuzz.figures import Figures

TARGETS: dict[str, Callable[[int, int, float], Figures]] = {
    "datafiles": datafiles.run,
    "optimizer": grpc_optimizer.run,
}
"""Campaign name -> run(seed, cases, budget_s)."""
SHORT = {"datafiles": 60, "optimizer": 80}
"""Cases per campaign in the short form (a few seconds each)."""
LONG = {"datafiles": 4000, "optimizer": 4000}
"""Cases per campaign in the long form (minutes)."""
