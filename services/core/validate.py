"""The one set of rules a system (SystemData) must meet before it is sized: unique names, model data on known
accelerators, finite non-negative figures, and every figure inside its physical bound (bounds.check_system,
docs/model.md s1). Applied where a system enters: the OptimizerService request (services.runtime.convert) and
the solver's input (services.optimizer.candidates), so a request, a data file and the CLI meet the same rules.

Pure module.
"""

from __future__ import annotations

import math

from services.core.bounds import check_system
from services.core.errors import InvalidInputError
from services.core.model import SystemData


def validate_system(system: SystemData) -> None:
    """Raise InvalidInputError naming the field and value for a system the solver cannot trust (also every
    figure outside its physical bound, docs/model.md s1)."""
    _unique([a.name for a in system.accelerators], "accelerators.name")
    _unique([s.name for s in system.servers], "servers.name")
    _unique([f"{p.model}/{p.accelerator}" for p in system.models], "models.name/acc")
    names = {a.name for a in system.accelerators}
    for perf in system.models:
        where = f"models[{perf.model}/{perf.accelerator}]"
        if perf.accelerator not in names:
            raise InvalidInputError(f"{where}.acc: unknown accelerator {perf.accelerator!r}")
        for key, value in (("alpha", perf.perf.alpha_ms), ("beta", perf.perf.beta_ms), ("gamma", perf.perf.gamma_ms)):
            if not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{where}.perfParms.{key} must be a finite number >= 0, got {value!r}")
    for server in system.servers:
        load = server.load
        for key, value in (("arrivalRate", load.arrival_rate_rpm), ("avgInTokens", load.avg_in_tokens),
                           ("avgOutTokens", load.avg_out_tokens)):
            if not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"servers[{server.name}].currentAlloc.load.{key} must be a finite "
                                        f"number >= 0, got {value!r}")
    if not 0 <= system.optimizer.blocking_bound < 1:
        raise InvalidInputError(f"optimizer.blocking_bound must be in [0, 1), got {system.optimizer.blocking_bound!r}")
    check_system(system)


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInputError(f"{what}: duplicate {name!r}")
        seen.add(name)
