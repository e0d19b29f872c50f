"""The managed-Deployment label contract (docs/contract.md s3): every label key, defined once, and one parser
per kind of label value, used by every service that reads a label (the collector for the whole set, the
actuator for its min-replicas fallback), so a value such as minreplicas "2.0" means the same everywhere.

A malformed optional label is a warning naming the Deployment and the label, and the value is ignored;
so is a value outside its physical bound (services.core.bounds, docs/model.md s1: "9999999999" batch, queue
or load figures, a load.outtokens in (0, 1)). A label naming a class, model or accelerator the static data
does not know is a warning too. ``inferno.server.maxreplicas`` caps the Deployment's replicas (like an HPA's
maxReplicas; default the setting INFERNO_MAX_REPLICAS); a minreplicas above it is clamped to it, with a
warning. Only a Deployment that cannot be sized at all (no server name, no model) yields no labels. Pure
module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.core import bounds
from services.core import model as m

PREFIX = "inferno.server."
MANAGED = PREFIX + "managed"
NAME = PREFIX + "name"
MODEL = PREFIX + "model"
CLASS = PREFIX + "class"
ACCELERATOR = PREFIX + "allocation.accelerator"
MAX_BATCH = PREFIX + "allocation.maxbatchsize"
MAX_QUEUE = PREFIX + "allocation.maxqueuesize"
KEEP_ACCELERATOR = PREFIX + "keepaccelerator"
MIN_REPLICAS = PREFIX + "minreplicas"
MAX_REPLICAS = PREFIX + "maxreplicas"
"""Most replicas inferno writes to this Deployment (like an HPA's maxReplicas); default INFERNO_MAX_REPLICAS."""
LOAD_RPM = PREFIX + "load.rpm"
LOAD_IN_TOKENS = PREFIX + "load.intokens"
LOAD_OUT_TOKENS = PREFIX + "load.outtokens"
LOAD_NUM_TOKENS = PREFIX + "load.numtokens"
"""Seed-era label: the average number of (output) tokens per request; used when load.outtokens is absent."""

MANAGED_SELECTOR = f"{MANAGED}=true"
"""The label selector that finds managed Deployments."""

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
"""A valid Kubernetes label value: at most 63 characters, alphanumeric at both ends, - _ . inside."""


def valid_label_value(value: str) -> bool:
    """Whether the Kubernetes API server accepts ``value`` as a label value (the actuator writes only such)."""
    return bool(_LABEL_VALUE.match(value))

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0", "")


@dataclass(frozen=True, slots=True)
class LabelLoad:
    """Fallback load from the load labels; None where the label is absent or malformed."""

    rpm: float | None = None
    in_tokens: float | None = None
    out_tokens: float | None = None


@dataclass(frozen=True, slots=True)
class ServerLabels:
    """What a managed Deployment's labels say about its server."""

    name: str
    model: str
    service_class: str = m.DEFAULT_CLASS
    accelerator: str = ""
    max_batch: int = 0
    max_queue: int = 0
    keep_accelerator: bool = False
    min_replicas: int = 0
    load: LabelLoad = field(default_factory=LabelLoad)


class LabelValueError(ValueError):
    """A label value that does not parse; the message says what it should be (e.g. "is not a whole number")."""


def parse_number(raw: str, bound: bounds.Bound = bounds.FIGURE) -> float | None:
    """A non-negative finite number label value at most ``bound.high``; None when empty. Raises
    LabelValueError otherwise."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise LabelValueError("is not a non-negative number")
    if value > bound.high:
        unit = f" {bound.unit}" if bound.unit else ""
        raise LabelValueError(f"is above the bound {bound.high:,.0f}{unit} (docs/model.md s1)")
    return value


def parse_count(raw: str, bound: bounds.Bound = bounds.REPLICAS) -> int | None:
    """A whole non-negative number label value ("2" and "2.0" are both 2) at most ``bound.high``; None when
    empty. Raises LabelValueError otherwise."""
    value = parse_number(raw, bound)
    if value is None:
        return None
    if value != int(value):
        raise LabelValueError("is not a whole number")
    return int(value)


def parse_out_tokens(raw: str) -> float | None:
    """Output tokens per request: a number 0 or at least 1 (a completed request generates a token), at most
    bounds.MAX_TOKENS; None when empty. Raises LabelValueError otherwise."""
    value = parse_number(raw, bounds.TOKENS)
    if value is not None and 0 < value < bounds.MIN_AVG_OUT_TOKENS:
        raise LabelValueError("is between 0 and 1 (a request generates at least one token)")
    return value


def max_replicas_of(labels: Mapping[str, str], default: int) -> tuple[int, str]:
    """The Deployment's replica cap: its maxreplicas label (1..bounds.MAX_REPLICAS) if valid, else ``default``
    (also capped at bounds.MAX_REPLICAS); with the problem of the label ("" when none)."""
    fallback = min(max(default, 0), bounds.MAX_REPLICAS)
    try:
        value = parse_count(labels.get(MAX_REPLICAS, ""))
    except LabelValueError as err:
        return fallback, f"{err}; the default {fallback} applies"
    if value is None:
        return fallback, ""
    if value < 1:
        return fallback, f"is below 1; the default {fallback} applies"
    return value, ""


def parse_flag(raw: str) -> bool:
    """A boolean label value: true/yes/1 or false/no/0/empty (any case). Raises LabelValueError otherwise."""
    raw = raw.strip().lower()
    if raw not in _TRUE and raw not in _FALSE:
        raise LabelValueError("is not true or false")
    return raw in _TRUE


class _Reader:
    """Reads labels of one Deployment, collecting warnings that name it and the label."""

    def __init__(self, labels: Mapping[str, str], where: str) -> None:
        self.labels = labels
        self.where = where
        self.warnings: list[str] = []

    def warn(self, key: str, problem: str) -> None:
        self.warnings.append(f"{self.where}: label {key}={bounds.short(self.labels.get(key, ''))} {problem}")

    def text(self, key: str) -> str:
        return self.labels.get(key, "").strip()

    def number(self, key: str, parse: Callable[[str], float | None] = parse_number) -> float | None:
        try:
            return parse(self.text(key))
        except LabelValueError as err:
            self.warn(key, f"{err}; ignored")
            return None

    def count(self, key: str, bound: bounds.Bound) -> int:
        try:
            return parse_count(self.text(key), bound) or 0
        except LabelValueError as err:
            self.warn(key, f"{err}; ignored")
            return 0

    def flag(self, key: str) -> bool:
        try:
            return parse_flag(self.text(key))
        except LabelValueError as err:
            self.warn(key, f"{err}; taken as false")
            return False


def _check_known(r: _Reader, labels: ServerLabels, static: m.SystemData | None) -> None:
    if static is None:
        return
    if static.service_class(labels.service_class) is None:
        r.warn(CLASS, "names a service class the data does not know")
    if not any(p.model == labels.model for p in static.models):
        r.warn(MODEL, "names a model the data does not know")
    if labels.accelerator and static.accelerator(labels.accelerator) is None:
        r.warn(ACCELERATOR, "names an accelerator the data does not know")


def _label_load(r: _Reader) -> LabelLoad:
    out_tokens = r.number(LOAD_OUT_TOKENS, parse_out_tokens)
    if out_tokens is None and LOAD_OUT_TOKENS not in r.labels:
        out_tokens = r.number(LOAD_NUM_TOKENS, parse_out_tokens)
    return LabelLoad(rpm=r.number(LOAD_RPM, lambda raw: parse_number(raw, bounds.RATE_RPM)),
                     in_tokens=r.number(LOAD_IN_TOKENS, lambda raw: parse_number(raw, bounds.TOKENS)),
                     out_tokens=out_tokens)


def _min_replicas(r: _Reader, cap: int) -> int:
    """The minreplicas label, clamped to the Deployment's replica cap with a warning."""
    try:
        value = parse_count(r.text(MIN_REPLICAS), bounds.Bound(0, math.inf)) or 0
    except LabelValueError as err:
        r.warn(MIN_REPLICAS, f"{err}; ignored")
        return 0
    if cap and value > cap:
        r.warn(MIN_REPLICAS, f"is above the Deployment's maximum of {cap} replicas ({MAX_REPLICAS} or "
                             f"INFERNO_MAX_REPLICAS); clamped to {cap}")
        return cap
    return value


def parse_labels(labels: Mapping[str, str], where: str, static: m.SystemData | None = None,
                 max_replicas: int = bounds.MAX_REPLICAS) -> tuple[ServerLabels | None, list[str]]:
    """Parse one managed Deployment's labels -> (ServerLabels or None, warnings naming ``where`` and label).

    None when the server cannot be identified: no ``inferno.server.name`` or no ``inferno.server.model``.
    ``static`` (the static data; None when unreadable) is used to warn about unknown class, model and
    accelerator names, which are kept as labelled. ``max_replicas`` is the default replica cap (the setting
    INFERNO_MAX_REPLICAS), which the maxreplicas label overrides; minreplicas is clamped to the cap.
    """
    r = _Reader(labels, where)
    cap, problem = max_replicas_of(labels, max_replicas)
    if problem:
        r.warn(MAX_REPLICAS, problem)
    name, model = r.text(NAME), r.text(MODEL)
    if not name or not model:
        missing = NAME if not name else MODEL
        return None, [f"{where}: skipped: label {missing} is missing or empty"]
    parsed = ServerLabels(
        name=name, model=model, service_class=r.text(CLASS) or m.DEFAULT_CLASS,
        accelerator=r.text(ACCELERATOR), max_batch=r.count(MAX_BATCH, bounds.BATCH),
        max_queue=r.count(MAX_QUEUE, bounds.QUEUE), keep_accelerator=r.flag(KEEP_ACCELERATOR),
        min_replicas=_min_replicas(r, cap), load=_label_load(r),
    )
    _check_known(r, parsed, static)
    return parsed, r.warnings
