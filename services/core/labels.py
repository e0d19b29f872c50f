"""The managed-Deployment label contract (docs/contract.md s3): every label key, defined once, and one parser
per kind of label value, used by every service that reads a label (the collector for the whole set, the
actuator for its min-replicas fallback), so a value such as minreplicas "2.0" means the same everywhere.

A malformed optional label is a warning naming the Deployment and the label, and the value is ignored;
a label naming a class, model or accelerator the static data does not know is a warning too. Only a
Deployment that cannot be sized at all (no server name, no model) yields no labels. Pure module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

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
LOAD_RPM = PREFIX + "load.rpm"
LOAD_IN_TOKENS = PREFIX + "load.intokens"
LOAD_OUT_TOKENS = PREFIX + "load.outtokens"
LOAD_NUM_TOKENS = PREFIX + "load.numtokens"
"""Seed-era label: the average number of (output) tokens per request; used when load.outtokens is absent."""

MANAGED_SELECTOR = f"{MANAGED}=true"
"""The label selector that finds managed Deployments."""

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


def parse_number(raw: str) -> float | None:
    """A non-negative finite number label value; None when empty. Raises LabelValueError otherwise."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise LabelValueError("is not a non-negative number")
    return value


def parse_count(raw: str) -> int | None:
    """A whole non-negative number label value ("2" and "2.0" are both 2); None when empty. Raises
    LabelValueError otherwise."""
    value = parse_number(raw)
    if value is None:
        return None
    if value != int(value):
        raise LabelValueError("is not a whole number")
    return int(value)


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
        self.warnings.append(f"{self.where}: label {key}={self.labels.get(key, '')!r} {problem}")

    def text(self, key: str) -> str:
        return self.labels.get(key, "").strip()

    def number(self, key: str) -> float | None:
        try:
            return parse_number(self.text(key))
        except LabelValueError as err:
            self.warn(key, f"{err}; ignored")
            return None

    def count(self, key: str) -> int:
        try:
            return parse_count(self.text(key)) or 0
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
    out_tokens = r.number(LOAD_OUT_TOKENS)
    if out_tokens is None and LOAD_OUT_TOKENS not in r.labels:
        out_tokens = r.number(LOAD_NUM_TOKENS)
    return LabelLoad(rpm=r.number(LOAD_RPM), in_tokens=r.number(LOAD_IN_TOKENS), out_tokens=out_tokens)


def parse_labels(labels: Mapping[str, str], where: str,
                 static: m.SystemData | None = None) -> tuple[ServerLabels | None, list[str]]:
    """Parse one managed Deployment's labels -> (ServerLabels or None, warnings naming ``where`` and label).

    None when the server cannot be identified: no ``inferno.server.name`` or no ``inferno.server.model``.
    ``static`` (the static data; None when unreadable) is used to warn about unknown class, model and
    accelerator names, which are kept as labelled.
    """
    r = _Reader(labels, where)
    name, model = r.text(NAME), r.text(MODEL)
    if not name or not model:
        missing = NAME if not name else MODEL
        return None, [f"{where}: skipped: label {missing} is missing or empty"]
    parsed = ServerLabels(
        name=name, model=model, service_class=r.text(CLASS) or m.DEFAULT_CLASS,
        accelerator=r.text(ACCELERATOR), max_batch=r.count(MAX_BATCH), max_queue=r.count(MAX_QUEUE),
        keep_accelerator=r.flag(KEEP_ACCELERATOR), min_replicas=r.count(MIN_REPLICAS), load=_label_load(r),
    )
    _check_known(r, parsed, static)
    return parsed, r.warnings
