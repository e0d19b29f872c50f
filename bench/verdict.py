"""How every benchmark line ends: the target it is held to and whether it holds (never an assertion: a
benchmark reports, `make bench` does not fail on a missed target)."""

from __future__ import annotations


def verdict(ok: bool) -> str:
    """'holds' or 'FAILS'."""
    return "holds" if ok else "FAILS"


def below(value: float, limit: float, unit: str) -> str:
    """'target < LIMIT UNIT: holds|FAILS' for a figure that should stay under ``limit``."""
    return f"target < {limit:g} {unit}: {verdict(value < limit)}"


def within(error: float, limit: float) -> str:
    """'target |error| <= LIMIT%: holds|FAILS' for a relative error (0.1 = 10%)."""
    return f"target |error| <= {limit:.0%}: {verdict(abs(error) <= limit)}"
