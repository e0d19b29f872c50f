"""Label and field selectors as the Kubernetes API parses them, and a LabelSelector rendered as a string.

Label selector grammar (comma-separated requirements, all must hold): ``key=value``, ``key==value``,
``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key`` (exists) and ``!key`` (does not exist).
Field selectors support ``path=value``, ``path==value`` and ``path!=value`` over dotted paths such as
``metadata.name``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")

Requirement = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """A selector string that does not parse."""


def _split(selector: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise SelectorError(f"unable to parse requirement: unbalanced parentheses in {selector!r}")
        if char == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [t for t in terms if t.strip()] if selector.strip() else []


def _requirement(term: str) -> Requirement:
    if match := _SET.match(term):
        key, values = match["key"], {v.strip() for v in match["values"].split(",")}
        if match["op"] == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    if match := _EQUALITY.match(term):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if match := _EXISTS.match(term):
        key = match["key"]
        if match["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term.strip()!r}")


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a labels map that is True when every requirement of ``selector`` holds.

    Raises SelectorError for a selector that does not parse.
    """
    requirements = [_requirement(term) for term in _split(selector or "")]
    return lambda labels: all(req(labels) for req in requirements)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """The labels of an object (empty when it has none)."""
    return (obj.get("metadata") or {}).get("labels") or {}


def parse_field_selector(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over an object that is True when every ``path=value`` / ``path!=value`` term holds."""
    checks = []
    for term in _split(selector or ""):
        match = _EQUALITY.match(term)
        if not match:
            raise SelectorError(f"invalid field selector term {term.strip()!r}")
        checks.append((match["key"].split("."), match["op"] == "!=", match["value"]))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) != negated for path, negated, value in checks)
    return matches


def _field(obj: Any, path: list[str]) -> str:
    for part in path:
        obj = obj.get(part) if isinstance(obj, Mapping) else None
    return "" if obj is None else str(obj)


def selector_string(label_selector: Mapping[str, Any] | None) -> str:
    """A metav1.LabelSelector (matchLabels, matchExpressions) rendered as a selector string, sorted by key."""
    terms: list[tuple[str, str]] = []
    selector = label_selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        terms.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key", ""), expr.get("operator", ""), sorted(expr.get("values") or ())
        rendered = {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                    "Exists": key, "DoesNotExist": f"!{key}"}.get(op, "")
        terms.append((key, rendered))
    return ",".join(term for _, term in sorted(terms))
