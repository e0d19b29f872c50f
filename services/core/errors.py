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


class NoDataError(InfernoError):
    """A required figure (load, metrics) is not available."""


class UnavailableError(InfernoError):
    """A dependency (Prometheus, the Kubernetes API, a service) cannot be reached."""
