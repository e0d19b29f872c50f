"""Hostile values, drawn from a seeded random.Random: what the issue 15 campaign found, and their neighbours."""

from __future__ import annotations

import random
from typing import Any

HUGE_INT = 10**400
NUMBERS: tuple[Any, ...] = (
    float("inf"), float("-inf"), float("nan"), 1e308, -1e308, 1e300, -1, -0.5, 0, 0.5, 0.999, 1, 1e-320,
    2**31 - 1, 2**31, 2**53 + 1, 2**63, HUGE_INT, 9_999_999_999, 1_000_000_000, 10_000_001, 4097, 65536,
)
STRINGS: tuple[str, ...] = (
    "", " ", "x" * 100_000, "\ud800", "a\udfffb", "\x00", "\n\r\t", "../../etc/passwd", "é" * 300, "💥",
    "Infinity", "NaN", "-1", "1e308", "9999999999", "true", "null", "{}", "'; DROP TABLE", "%s%n",
)
OTHERS: tuple[Any, ...] = (None, True, False, [], {}, [1, 2], {"a": 1})


def number(rng: random.Random) -> Any:
    """A hostile number (possibly not finite, huge, negative or fractional)."""
    return rng.choice(NUMBERS)


def string(rng: random.Random) -> str:
    """A hostile string (empty, 100k characters, a lone surrogate, control characters, ...)."""
    return rng.choice(STRINGS)


def anything(rng: random.Random) -> Any:
    """A hostile JSON value of any type."""
    pick = rng.random()
    if pick < 0.55:
        return number(rng)
    if pick < 0.85:
        return string(rng)
    return rng.choice(OTHERS)


def deep(depth: int) -> Any:
    """A list nested ``depth`` deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value
