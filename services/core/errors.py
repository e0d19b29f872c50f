"""Domain errors shared by the services; each maps to one gRPC status code in services.runtime.grpcserve."""

from __future__ import annotations


class InfernoError(Exception):
    """Base of the domain errors."""


class DataFileError(InfernoError):
    """A data file is missing, malformed or inconsistent. The message names the file, JSON path and value."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}")
        self.file = file
        self.path = path


class InvalidInputError(InfernoError):
    """An input (request field, setting, label) has a bad value; the message names the field and value."""


class InfeasibleError(InfernoError):
    """No allocation satisfies the constraints (e.g. no candidate meets the SLOs, no capacity)."""


class UnavailableError(InfernoError):
    """A dependency (Prometheus, the Kubernetes API, a service) cannot be reached."""


class ServiceCallError(InfernoError):
    """A call to another service failed: ``service`` (collector, optimizer, actuator), the gRPC status ``code``
    name and its ``details``. The message is "CODE: details". Raised by the controller's clients, which classify
    the failure into one of the two subclasses."""

    def __init__(self, service: str, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.service = service
        self.code = code
        self.details = details


class RefusedError(ServiceCallError):
    """The service certainly did nothing: it refused the call by its status (INVALID_ARGUMENT, ...) or the
    connection was never made."""


class NoAnswerError(ServiceCallError):
    """The service was reached but did not answer (deadline passed, connection lost mid-call, internal error):
    it may have acted on part of the request."""
