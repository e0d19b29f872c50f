"""One row of a cycle's allocation table (CycleRecord.rows): a server as collected, decided and actuated.

A typed, frozen record read by attribute (the controller's metrics and fast path, the simulator); its JSON
form (``as_json``), in the /invoke answer and the cycle log, has exactly the keys documented in
docs/contract.md: the columns every row has, and the others only when they apply (a forecast was made, the
optimizer allocated the server, the actuator reported on it, the model was checked against it, a percentile
was observed, targeted or predicted). Units are in the names: ms, req/min (``_rpm``), s, cost per hour.

Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

_ALWAYS = ""
_SPARSE = "*"
"""``when`` of a column present when its own value is not None (a percentile, the unallocated reason)."""


def _column(when: str) -> Any:
    """A column with no value (None) unless given, present in the JSON form when the column ``when`` is not
    None (``_SPARSE``: its own value). A field without this metadata is always present."""
    return field(default=None, metadata={"when": when})


def _sparse() -> Any:
    return _column(_SPARSE)


def _forecast() -> Any:
    return _column("forecast_method")


def _decided() -> Any:
    return _column("accelerator")


def _acted() -> Any:
    return _column("action")


def _checked() -> Any:
    return _column("model_mismatch")


@dataclass(frozen=True, slots=True)
class CycleRow:
    """A server's row: who it is (server, class, model, Deployment), the load and latency collected, its
    service class's targets, its current allocation, then, when they apply, the forecast, the decision
    (accelerator, replicas, ... and predictions), why it got no allocation, what the actuator did (``action``
    is an ActuationOutcome value or "would-change" in a dry run) and the model check at its current allocation.
    None: no figure (present as null in JSON for the columns every row has, absent for the others)."""

    server: str
    service_class: str = field(default="", metadata={"key": "class"})
    model: str = ""
    namespace: str = ""
    deployment: str = ""
    arrival_rate_rpm: float = 0.0
    avg_in_tokens: float = 0.0
    avg_out_tokens: float = 0.0
    load_source: str = ""
    observed_itl_ms: float | None = None
    observed_ttft_ms: float | None = None
    slo_itl_ms: float | None = None
    slo_ttft_ms: float | None = None
    current_accelerator: str = ""
    current_replicas: int = 0
    ready_replicas: int = 0
    observed_ttft_ms_p50: float | None = _sparse()
    slo_ttft_ms_p50: float | None = _sparse()
    observed_ttft_ms_p90: float | None = _sparse()
    slo_ttft_ms_p90: float | None = _sparse()
    observed_ttft_ms_p95: float | None = _sparse()
    slo_ttft_ms_p95: float | None = _sparse()
    observed_ttft_ms_p99: float | None = _sparse()
    slo_ttft_ms_p99: float | None = _sparse()
    observed_itl_ms_p50: float | None = _sparse()
    slo_itl_ms_p50: float | None = _sparse()
    observed_itl_ms_p90: float | None = _sparse()
    slo_itl_ms_p90: float | None = _sparse()
    observed_itl_ms_p95: float | None = _sparse()
    slo_itl_ms_p95: float | None = _sparse()
    observed_itl_ms_p99: float | None = _sparse()
    slo_itl_ms_p99: float | None = _sparse()
    measured_rate_rpm: float | None = _forecast()
    forecast_rpm: float | None = _forecast()
    forecast_lower_rpm: float | None = _forecast()
    forecast_upper_rpm: float | None = _forecast()
    forecast_horizon_s: float | None = _forecast()
    forecast_method: str | None = _forecast()
    forecast_rising: bool | None = _forecast()
    accelerator: str | None = _decided()
    replicas: int | None = _decided()
    max_batch: int | None = _decided()
    cost_per_hour: float | None = _decided()
    predicted_itl_ms: float | None = _decided()
    predicted_ttft_ms: float | None = _decided()
    saturated: bool | None = _decided()
    unserved_rate_rpm: float | None = _decided()
    predicted_ttft_ms_p50: float | None = _sparse()
    predicted_ttft_ms_p90: float | None = _sparse()
    predicted_ttft_ms_p95: float | None = _sparse()
    predicted_ttft_ms_p99: float | None = _sparse()
    predicted_itl_ms_p50: float | None = _sparse()
    predicted_itl_ms_p90: float | None = _sparse()
    predicted_itl_ms_p95: float | None = _sparse()
    predicted_itl_ms_p99: float | None = _sparse()
    unallocated_reason: str | None = _sparse()
    pool_classes: tuple[dict[str, Any], ...] | None = _sparse()
    """A pool's classes (docs/contract.md s10), in priority order: ``class``, ``priority``, ``arrival_rate_rpm``,
    ``latency_bound_s`` (None without targets) and, once decided, ``rate_per_replica_rpm`` and
    ``predicted_latency_s``."""
    action: str | None = _acted()
    action_reason: str | None = _acted()
    replicas_from: int | None = _acted()
    replicas_to: int | None = _acted()
    dry_run: bool | None = _acted()
    current_predicted_itl_ms: float | None = _checked()
    current_predicted_ttft_ms: float | None = _checked()
    model_itl_ratio: float | None = _checked()
    model_ttft_ratio: float | None = _checked()
    model_disagreeing_cycles: int | None = _checked()
    model_mismatch: bool | None = _checked()

    def as_json(self) -> dict[str, Any]:
        """The row as the /invoke answer and the cycle log have it (docs/contract.md): JSON key -> value, the
        columns that apply only, in the order of the fields."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            when = f.metadata.get("when", _ALWAYS)
            if when == _SPARSE and value is None or when not in (_ALWAYS, _SPARSE) and getattr(self, when) is None:
                continue
            out[f.metadata.get("key") or f.name] = value
        return out
