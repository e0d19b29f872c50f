"""Errors of the emulated Kubernetes API, each carrying the metav1.Status object the real API server answers."""

from __future__ import annotations

from typing import Any

from emulator.kuberesources import Resource


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Failure Status object shaped like the API server's (kind Status, apiVersion v1)."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason}
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _details(resource: Resource, name: str, kind: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = kind or resource.plural
    return details


class StoreError(Exception):
    """A request the store refuses; ``status`` is the Status object to answer and ``code`` its HTTP code."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status["message"])
        self.status = status
        self.code: int = status["code"]


class NotFoundError(StoreError):
    """404: the object (or the resource type) does not exist."""

    @classmethod
    def of(cls, resource: Resource, name: str) -> NotFoundError:
        """The NotFound error for ``name`` of ``resource``."""
        return cls(status_body(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name)))


class AlreadyExistsError(StoreError):
    """409 AlreadyExists: a create names an object that exists."""

    @classmethod
    def of(cls, resource: Resource, name: str) -> AlreadyExistsError:
        """The AlreadyExists error for ``name`` of ``resource``."""
        return cls(status_body(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists',
                               _details(resource, name)))


class ConflictError(StoreError):
    """409 Conflict: a write carried a stale metadata.resourceVersion."""

    @classmethod
    def of(cls, resource: Resource, name: str) -> ConflictError:
        """The Conflict error for ``name`` of ``resource``."""
        message = (f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been modified; '
                   "please apply your changes to the latest version and try again")
        return cls(status_body(409, "Conflict", message, _details(resource, name)))


class InvalidError(StoreError):
    """422 Invalid: the object fails validation; ``causes`` are (reason, field, message) triples."""

    @classmethod
    def of(cls, kind: str, name: str, causes: list[tuple[str, str, str]]) -> InvalidError:
        """The Invalid error for ``name`` of a ``kind`` (qualified like "Deployment.apps") with its causes."""
        listed = [{"reason": reason, "message": message, "field": field} for reason, field, message in causes]
        summary = ", ".join(f"{field}: {message}" if field else message for _, field, message in causes)
        summary = f"[{summary}]" if len(causes) > 1 else summary
        bare, _, group = kind.partition(".")
        details = {"name": name, **({"group": group} if group else {}), "kind": bare, "causes": listed}
        return cls(status_body(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details))


class BadRequestError(StoreError):
    """400 BadRequest: an undecodable body, a bad selector or a name that contradicts the URL."""

    @classmethod
    def of(cls, message: str) -> BadRequestError:
        """The BadRequest error with ``message``."""
        return cls(status_body(400, "BadRequest", message))


class GoneError(StoreError):
    """410 Expired: a watch asked for a resourceVersion older than the kept event history."""

    @classmethod
    def of(cls, resource_version: str) -> GoneError:
        """The Expired error for ``resource_version``."""
        return cls(status_body(410, "Expired", f"too old resource version: {resource_version}"))
