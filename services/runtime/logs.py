"""Structured logging: structlog JSON lines to stdout, configured once per process.

Events are snake_case past tense (``deployment_scaled``, ``cycle_skipped``) with stable keys. Every value is
redacted (services.core.redact) after the exception is rendered, so no password in a URL, token or
Authorization header reaches the log, whatever logged it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from services.core.redact import redact_tree

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_configured = False


def configure_logging(level: str = "info") -> None:
    """Send structlog events as JSON lines to stdout at ``level``; later calls are no-ops."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    _configured = True


def redact_event(_logger: object, _method: str, event: dict) -> dict:
    """structlog processor: every value of ``event`` with credentials redacted."""
    return redact_tree(event)


def get_logger(component: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose events carry ``component``; lazy, so a module-level logger made before
    configure_logging still renders JSON."""
    return structlog.get_logger(component=component)
