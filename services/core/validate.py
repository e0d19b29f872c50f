"""The one set of rules a system (SystemData) must meet before it is sized: unique names, model data on known
accelerators, and every figure finite and inside its physical bound (bounds.check_system, docs/model.md s1).
Applied where a system enters: the OptimizerService request (services.runtime.convert) and the solver's input
(services.optimizer.candidates), so a request, a data file and the CLI meet the same rules.

Pure module.
"""

from __future__ import annotations

from services.core.bounds import check_system
from services.core.errors import InvalidInputError
from services.core.model import SystemData


def validate_system(system: SystemData) -> None:
    """Raise InvalidInputError naming the field and value for a system the solver cannot trust (also every
    figure outside its physical bound, docs/model.md s1)."""
    _unique([a.name for a in system.accelerators], "accelerators.name")
    _unique([s.name for s in system.servers], "servers.name")
    _unique([f"{p.model}/{p.accelerator}" for p in system.models], "models.model/accelerator")
    names = {a.name for a in system.accelerators}
    for perf in system.models:
        if perf.accelerator not in names:
            raise InvalidInputError(f"models[{perf.model}/{perf.accelerator}].accelerator: unknown accelerator "
                                    f"{perf.accelerator!r}")
    if not 0 <= system.optimizer.blocking_bound < 1:
        raise InvalidInputError(f"optimizer.blocking_bound must be in [0, 1), got {system.optimizer.blocking_bound!r}")
    check_system(system)


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInputError(f"{what}: duplicate {name!r}")
        seen.add(name)
