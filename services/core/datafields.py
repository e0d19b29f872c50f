"""Typed, case-insensitive access to one JSON object of an Inferno data file, with exact error locations.

A Reader wraps a JSON object at a JSON path (``$.servers[3].currentAlloc``) of a named file. Its getters
check type and sign and raise DataFileError naming file, path and value; keys are matched
case-insensitively (Inferno's Go decoder does the same). Every key read is remembered, so that
``Report.finish`` can name the keys nobody read: warnings, or errors in strict mode. Numbers are finite and
within a physical bound (services.core.bounds, docs/model.md s1), names valid Unicode of bounded length, and
a value quoted in an error is shortened (bounds.short). Values that Inferno tolerates by falling back to a
default (a priority outside 1..100, capacity for a card type no accelerator has) go through ``Report.warn``:
a warning too, or an error in strict mode.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from typing import Any

from services.core import bounds
from services.core.bounds import Bound
from services.core.errors import DataFileError

_MISSING: Any = object()


class Report:
    """Collects the readers of one load and turns their unread keys into warnings (or an error if strict)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._readers: list[Reader] = []
        self._warnings: list[str] = []

    def register(self, reader: Reader) -> None:
        """Remember ``reader`` so its unread keys are checked at finish."""
        self._readers.append(reader)

    def warn(self, file: str, path: str, message: str) -> None:
        """A value Inferno tolerates but that is probably a mistake: warning ``"file: path: message"``, or
        DataFileError naming file and path in strict mode."""
        if self.strict:
            raise DataFileError(file, path, f"{message} (strict mode)")
        self._warnings.append(f"{file}: {path}: {message}")

    def finish(self) -> tuple[str, ...]:
        """Warnings (``"file: path.key: unknown key ignored"`` and those of ``warn``), sorted; raises
        DataFileError on the first unknown key if strict."""
        warnings = list(self._warnings)
        for reader in self._readers:
            for key in reader.unread():
                if self.strict:
                    raise DataFileError(reader.file, f"{reader.path}.{key}", "unknown key (strict mode)")
                warnings.append(f"{reader.file}: {reader.path}.{key}: unknown key ignored")
        return tuple(sorted(set(warnings)))


class Reader:
    """One JSON object of a data file; see the module docstring."""

    def __init__(self, value: Any, file: str, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            raise DataFileError(file, path, f"expected an object, got {_describe(value)}")
        self.file, self.path, self._value, self._report = file, path, value, report
        self._keys = {key.lower(): key for key in value}
        self._read: set[str] = set()
        report.register(self)

    @classmethod
    def root(cls, value: Any, file: str, report: Report) -> Reader:
        """The top-level object of ``file``."""
        return cls(value, file, "$", report)

    def unread(self) -> list[str]:
        """Keys of this object that no getter asked for."""
        return [key for key in self._value if key not in self._read]

    def _raw(self, key: str, default: Any) -> tuple[Any, str]:
        actual = self._keys.get(key.lower())
        if actual is None:
            if default is _MISSING:
                raise DataFileError(self.file, f"{self.path}.{key}", "required key is missing")
            return default, key
        self._read.add(actual)
        return self._value[actual], actual

    def _fail(self, key: str, value: Any, expected: str) -> DataFileError:
        return DataFileError(self.file, f"{self.path}.{key}", f"expected {expected}, got {_describe(value)}")

    def error(self, key: str, message: str) -> DataFileError:
        """A DataFileError about ``key`` of this object (spelled as in the file), for checks beyond one getter."""
        return DataFileError(self.file, f"{self.path}.{self._keys.get(key.lower(), key)}", message)

    def has(self, key: str) -> bool:
        """Whether the object has ``key`` (any case)."""
        return key.lower() in self._keys

    def text(self, key: str, default: Any = _MISSING) -> str:
        """A string value of at most bounds.MAX_NAME_LENGTH characters, valid Unicode (no lone surrogate);
        anything else raises DataFileError."""
        value, key = self._raw(key, default)
        if not isinstance(value, str):
            raise self._fail(key, value, "a string")
        problem = bounds.name_problem(value)
        if problem:
            raise DataFileError(self.file, f"{self.path}.{key}", problem)
        return value

    def number(self, key: str, default: Any = _MISSING, bound: Bound = bounds.FIGURE) -> float:
        """A finite number within ``bound`` (non-negative: negative costs, rates or SLOs are errors)."""
        value, key = self._raw(key, default)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))):  # a 400-digit int is checked below
            raise self._fail(key, value, "a number")
        if value < 0:
            raise self._fail(key, value, "a non-negative number")
        if value > bound.high:
            raise self._fail(key, value, f"a number at most {_limit(bound)}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING) -> int:
        """A whole number, any sign, of magnitude at most 2**53 (a float with a fraction, Infinity, NaN or a
        400-digit integer is an error)."""
        value, key = self._raw(key, default)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value)) or value != int(value)):
            raise self._fail(key, value, "a whole number")
        if abs(value) > _WHOLE_LIMIT:
            raise self._fail(key, value, "a whole number of magnitude at most 2**53")
        return int(value)

    def count(self, key: str, default: Any = _MISSING, bound: Bound = bounds.CAPACITY) -> int:
        """A whole number within ``bound`` (replicas, batch sizes, card counts; never negative)."""
        return self._whole_within(key, default, bound, 0, "a non-negative whole number")

    def positive(self, key: str, default: Any = _MISSING, bound: Bound = bounds.CAPACITY) -> int:
        """A whole number >= 1 within ``bound`` (a multiplicity: 0 cards per accelerator would make capacity
        free)."""
        return self._whole_within(key, default, bound, 1, "a positive whole number")

    def _whole_within(self, key: str, default: Any, bound: Bound, low: int, below: str) -> int:
        """``integer(key)`` checked against ``low`` (``below`` describes the failure) and ``bound.high``."""
        value = self.integer(key, default)
        if value < low:
            raise self._fail(self._keys.get(key.lower(), key), value, below)
        if value > bound.high:
            raise self._fail(self._keys.get(key.lower(), key), value, f"a whole number at most {_limit(bound)}")
        return value

    def warn(self, key: str, message: str) -> None:
        """Report ``message`` about ``key`` of this object through ``Report.warn`` (raises in strict mode)."""
        self._report.warn(self.file, f"{self.path}.{self._keys.get(key.lower(), key)}", message)

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        """A JSON boolean."""
        value, key = self._raw(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, value, "true or false")
        return value

    def choice(self, key: str, choices: type[enum.Enum], default: Any = _MISSING) -> Any:
        """A member of the string enum ``choices``, matched case-insensitively ("" means the default, which may be
        None for a key whose absence means "not chosen")."""
        value, key = self._raw(key, default)
        if isinstance(value, choices) or (value is None and default is None):
            return value
        by_name = {member.value.lower(): member for member in choices}
        if isinstance(value, str) and value == "" and default is not _MISSING:
            return default
        if not isinstance(value, str) or value.lower() not in by_name:
            raise self._fail(key, value, "one of " + ", ".join(member.value for member in choices))
        return by_name[value.lower()]

    def is_present(self, key: str) -> bool:
        """Whether ``key`` is in the object (any value)."""
        return key.lower() in self._keys

    def is_object(self, key: str) -> bool:
        """Whether ``key`` is present and holds an object (for fields that take a number or an object)."""
        actual = self._keys.get(key.lower())
        return actual is not None and isinstance(self._value[actual], dict)

    def obj(self, key: str, optional: bool = False) -> Reader | None:
        """The nested object at ``key`` (None when optional and absent or null)."""
        value, key = self._raw(key, None if optional else _MISSING)
        if value is None and optional:
            return None
        return Reader(value, self.file, f"{self.path}.{key}", self._report)

    def items(self, key: str, optional: bool = False) -> list[Reader]:
        """The list of objects at ``key`` (empty when optional and absent or null)."""
        value, key = self._raw(key, None if optional else _MISSING)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise self._fail(key, value, "a list")
        return [Reader(item, self.file, f"{self.path}.{key}[{i}]", self._report) for i, item in enumerate(value)]

    def entries(self) -> Iterator[tuple[str, Reader]]:
        """(key, object) pairs of a map-shaped object, such as a solution's allocations."""
        for key, value in self._value.items():
            self._read.add(key)
            problem = bounds.name_problem(key)
            if problem:
                raise DataFileError(self.file, f"{self.path}.{bounds.short(key)}", f"key {problem}")
            yield key, Reader(value, self.file, f"{self.path}.{key}", self._report)


_WHOLE_LIMIT = 2**53
"""Largest whole number a JSON reader in any language keeps exactly (a float64 mantissa)."""


def _limit(bound: Bound) -> str:
    unit = f" {bound.unit}" if bound.unit else ""
    return f"{bound.high:,.0f}{unit} (docs/model.md s1)"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return bounds.short(value)
