"""Fault injection for the emulated Kubernetes API (tests only): error answers and slow answers on chosen requests.

A ``Faults`` object holds rules; ``KubeApiServer(store, faults=faults)`` asks it about every resource request
(as the authorizer sees it, emulator.kubeapi.KubeRequest) before serving it. A matching rule may delay the
answer (``delay_s``) and/or answer an error instead of serving it (``status``: 500, 503, 409, 429, ...; the
body is a Kubernetes Status, as the real API server sends). Rules match on RBAC verb, resource
("deployments/scale" for a subresource), namespace and name, ``*`` matching anything; ``times`` limits how
often a rule fires (0 = always). ``random_rate`` makes a rule fire on a share of its matches, drawn from the
Faults' own seeded generator, so a fuzz run is reproducible. Every fault that fired is recorded.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

__all__ = ["Fault", "Faults", "status_body"]

_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One rule: which requests (``*`` = any) and what happens to them (a delay, an error status, or both)."""

    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    status: int = 0
    """HTTP status answered instead of serving the request; 0 = serve it (after the delay)."""
    delay_s: float = 0.0
    times: int = 0
    """How many times the rule fires; 0 = every match."""
    random_rate: float = 1.0
    """Share of the matches it fires on (drawn from the Faults' seeded generator)."""

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        """Whether the rule covers a request with these fields."""
        return all(want in ("*", got) for want, got in ((self.verb, verb), (self.resource, resource),
                                                      (self.namespace, namespace), (self.name, name)))


@dataclass
class Faults:
    """The rules of one emulated API server, a seeded generator and the record of faults fired (thread-safe)."""

    rules: list[Fault] = field(default_factory=list)
    seed: int = 0
    fired: list[tuple[str, str, str, str, Fault]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _used: dict[int, int] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, fault: Fault) -> Fault:
        """Add a rule (rules are tried in the order added; the first that fires wins)."""
        with self._lock:
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule (the record stays)."""
        with self._lock:
            self.rules.clear()
            self._used.clear()

    def pick(self, verb: str, resource: str, namespace: str, name: str) -> Fault | None:
        """The rule that fires for this request, recorded, or None."""
        with self._lock:
            for index, fault in enumerate(self.rules):
                if not fault.matches(verb, resource, namespace, name):
                    continue
                if fault.times and self._used.get(index, 0) >= fault.times:
                    continue
                if fault.random_rate < 1.0 and self._rng.random() >= fault.random_rate:
                    continue
                self._used[index] = self._used.get(index, 0) + 1
                self.fired.append((verb, resource, namespace, name, fault))
                return fault
        return None


def status_body(code: int, verb: str, resource: str, name: str) -> dict:
    """The Kubernetes Status an injected error answers."""
    reason = _REASONS.get(code, "InternalError")
    message = (f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; please '
               f"apply your changes to the latest version and try again" if code == 409
               else f"injected fault: {verb} {resource} {name}".strip())
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
