"""Redaction: the secret values of a call never reach tool output, error messages or logs.

An upstream may echo what it was sent (a debugging endpoint, an error page quoting the request); the hub
passes every result and error of a call with credentials through :func:`redact_value` / :func:`redact_error`.
Forms covered: the raw value, its percent-encoding (query strings) and ``user:password`` in base64 (basic).
:class:`UrlQueryFilter` masks API keys sent as query parameters in httpx2's request log lines.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import httpx2

from toolbridge.errors import ToolbridgeError

__all__ = ["MASK", "UrlQueryFilter", "forms", "redact_error", "redact_text", "redact_value"]

MASK = "[redacted]"
_MIN = 6  # shorter values would mask ordinary words; such secrets are too weak to matter anyway


def forms(values: Iterable[str], *, basic_user: str | None = None) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        if len(value) < _MIN:
            continue
        found += [value, quote(value, safe="")]
        if basic_user is not None:
            found.append(base64.b64encode(f"{basic_user}:{value}".encode()).decode())
    return tuple(dict.fromkeys(sorted(found, key=len, reverse=True)))


def redact_text(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any, secrets: Sequence[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {redact_text(str(k), secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, secrets) for v in value]
    return value


def redact_error(exc: ToolbridgeError, secrets: Sequence[str]) -> None:
    """Mask secrets in an error's message, hint, upstream body excerpt and upstream answer, in place."""
    if not secrets:
        return
    exc.message = redact_text(exc.message, secrets)
    exc.args = (exc.message,)
    if exc.hint:
        exc.hint = redact_text(exc.hint, secrets)
    body = getattr(exc, "body", None)
    if isinstance(body, str):
        exc.body = redact_text(body, secrets)  # type: ignore[attr-defined]
    answer = getattr(exc, "answer", None)
    if isinstance(answer, dict):
        exc.answer = redact_value(answer, secrets)  # type: ignore[attr-defined]


class UrlQueryFilter(logging.Filter):
    """Masks the values of the named query parameters in log records that carry an ``httpx2.URL``."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = frozenset(names)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx2.URL) for a in record.args):
            record.args = tuple(self._mask(a) if isinstance(a, httpx2.URL) else a for a in record.args)
        return True

    def _mask(self, url: httpx2.URL) -> httpx2.URL:
        if not any(name in url.params for name in self.names):
            return url
        return url.copy_merge_params({name: MASK for name in self.names if name in url.params})
