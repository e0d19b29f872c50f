"""Credentials out of every text that is logged or returned (docs/contract.md s7).

A URL may carry a password (``https://user:secret@prometheus:9090``) or a token in its query; an error body
may echo an ``Authorization`` header. redact() replaces each such secret with ``***`` and keeps the rest
(scheme, user, host, path), so a message still says where and what. redact_tree() does the same to every
string of a JSON-like value (the /invoke body, the cycle log, a log event). Pure: standard library only.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/@:]*):(?P<secret>[^\s/@]*)@")
"""scheme://user:password@ (the password may be empty; a user alone carries no secret)."""
_QUERY = re.compile(r"(?P<key>[?&;](?:[a-z_-]*(?:token|password|passwd|secret|signature|sig|key|auth)"
                    r"[a-z_-]*)=)(?P<secret>[^&#\s'\"]+)", re.IGNORECASE)
"""?access_token=..., &password=..., &api_key=..., &X-Amz-Signature=... in a URL's query."""
_AUTH_HEADER = re.compile(r"(?P<key>\b(?:authorization|proxy-authorization|x-api-key|cookie|set-cookie)"
                          r"['\"]?\s*[:=]\s*['\"]?)(?P<secret>[^'\"\r\n,}]+)", re.IGNORECASE)
"""Authorization: Basic ..., 'Authorization': 'Bearer ...' (as a dict is printed), Cookie: ..."""
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
"""A bearer token anywhere (``Bearer eyJ...``)."""


def redact(text: str) -> str:
    """``text`` with passwords in URLs, secret query parameters, Authorization/Cookie header values and bearer
    tokens replaced by ``***``. Idempotent; text without secrets comes back unchanged."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['key']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_tree(value: Any) -> Any:
    """A copy of a JSON-like ``value`` (dicts, lists, tuples, strings, numbers) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item) for item in value]
    return value
