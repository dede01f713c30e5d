"""Redaction: the secret values of a call never reach tool output, error messages or logs.

An upstream may echo what it was sent (a debugging endpoint, an error page quoting the request); the hub
passes every result and error of a call with credentials through :func:`redact_value` / :func:`redact_error`.
Forms covered (:func:`encodings`): the raw value; percent-encoded in either case and form-encoded; HTML
and JSON escaped; hex; base64 and base64url, also inside a longer base64 text; and ``user:password`` in
each of these (basic). A multi-line secret's lines of 16 characters or more are masked one by one too.
Every form is matched in any letter case (an upstream that upper-cases what it quotes, or its hex): one
compiled pattern per set of forms (cached), tried only on a text whose lower-case copy holds a form.
:class:`UrlQueryFilter` masks API keys sent as query parameters in httpx2's request log lines;
:class:`ResponseHeadersFilter` keeps the header values of a response out of httpcore2's DEBUG trace.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2

from toolbridge.errors import ToolbridgeError

__all__ = [
    "MASK",
    "ResponseHeadersFilter",
    "UrlQueryFilter",
    "encodings",
    "forms",
    "redact_error",
    "redact_text",
    "redact_value",
]

MASK = "[redacted]"
_MIN = 6  # shorter values would mask ordinary words; such secrets are too weak to matter anyway
_MIN_BASE64 = 8  # a shorter run of base64 characters would match by chance
_MIN_LINE = 16  # a line of a multi-line secret masked wherever it appears (shorter: a PEM's last line)
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_URLSAFE = str.maketrans("+/", "-_")


def forms(values: Iterable[str], *, basic_user: str | None = None) -> tuple[str, ...]:
    """Every form of ``values`` an upstream could echo, longest first (see :func:`encodings`)."""
    found: list[str] = []
    for value in values:
        if len(value) < _MIN:
            continue
        found += encodings(value)
        if basic_user is not None:
            found += encodings(f"{basic_user}:{value}")
        found += _lines(value)
    return tuple(dict.fromkeys(sorted(found, key=len, reverse=True)))


def _lines(value: str) -> list[str]:
    """The lines of a multi-line secret (a PEM key, a service account's JSON) long enough to be its own:
    text read a line at a time (a subprocess's stderr, a log) holds them apart, never the whole."""
    lines = [line.strip() for line in value.splitlines()]
    return [line for line in lines if len(line) >= _MIN_LINE] if len(lines) > 1 else []


def encodings(value: str) -> list[str]:
    """``value`` as sent and as commonly re-encoded: percent-encoding (upper and lower case hex, with and
    without ``/`` kept), form encoding (``quote_plus``), HTML escapes (named and numeric), JSON string
    escapes (ASCII-only or not, ``\\/``) and base64 / base64url of the value and of its JSON escapes — also
    as the part of a longer base64 text that spells them at each of the three byte alignments."""
    quoted = [quote(value, safe=""), quote(value), quote_plus(value, safe=""), quote_plus(value)]
    quoted += [_lower_hex(q) for q in quoted]
    escaped = [html.escape(value), html.escape(value, quote=False), _numeric_entities(value)]
    dumped = [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    dumped += [d.replace("/", "\\/") for d in dumped]
    inside = dict.fromkeys([value, dumped[0], dumped[1]])  # base64 of a JSON text (a JWT) holds it escaped
    hexed = value.encode().hex()  # upper case too: forms match in any case
    return [value, *quoted, *escaped, *dumped, hexed, *(f for v in inside for f in _base64_forms(v.encode()))]


def _lower_hex(text: str) -> str:
    return _PERCENT.sub(lambda m: m.group(0).lower(), text)


def _numeric_entities(value: str) -> str:
    return "".join(c if c.isalnum() else f"&#{ord(c)};" for c in value)


def _base64_forms(raw: bytes) -> list[str]:
    """The base64 characters fully determined by ``raw`` at byte offsets 0, 1 and 2 of a longer text."""
    found: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        start, end = -(-offset * 8 // 6), (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64:
            found += [core, core.translate(_URLSAFE)]
    whole = base64.b64encode(raw).decode()
    return [whole, whole.translate(_URLSAFE), whole.translate(_URLSAFE).rstrip("="), *found]


@dataclass(frozen=True, slots=True)
class _Matcher:
    folded: tuple[str, ...]
    """The forms in lower case (but those holding another): a text whose lower-case copy holds none of
    them needs no regular expression."""
    pattern: re.Pattern[str]

    def mask(self, text: str) -> str:
        lowered = text.lower()
        for form in self.folded:
            if form in lowered:
                return self.pattern.sub(MASK, text)
        return text


@functools.lru_cache(maxsize=256)
def _matcher(secrets: tuple[str, ...]) -> _Matcher:
    ordered = sorted(
        dict.fromkeys(secrets), key=len, reverse=True
    )  # the longest form wins where they overlap
    pattern = re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE)
    folded = list(dict.fromkeys(form.lower() for form in ordered))
    # a text holding a form holds every form inside it: the shortest ones are enough to look for
    needed = [form for form in folded if not any(other != form and other in form for other in folded)]
    return _Matcher(tuple(needed), pattern)


def _matcher_of(secrets: Sequence[str]) -> _Matcher:
    return _matcher(secrets if isinstance(secrets, tuple) else tuple(secrets))


def redact_text(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every form in ``secrets`` masked, in any letter case."""
    return _matcher_of(secrets).mask(text) if secrets else text


def redact_value(value: Any, secrets: Sequence[str]) -> Any:
    if not secrets:
        return value
    return _redacted(value, _matcher_of(secrets))


def _redacted(value: Any, matcher: _Matcher) -> Any:
    if isinstance(value, str):
        return matcher.mask(value)
    if isinstance(value, dict):
        return {matcher.mask(str(k)): _redacted(v, matcher) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, matcher) for v in value]
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


_HEADERS_TRACE = re.compile(
    r"^(receive_response_headers\.complete return_value=\(b'[^']*', \d+, b'[^']*'), .*$", re.S
)
"""httpcore2's trace of a response's head:
``receive_response_headers.complete return_value=(b'HTTP/1.1', 401, b'Unauthorized', [headers])``."""


class ResponseHeadersFilter(logging.Filter):
    """Drops the header values from httpcore2's DEBUG trace of a response's head (the version, status and
    reason stay): an upstream may reflect what it was sent there — a ``Location`` that keeps
    ``?api_key=…``, a ``WWW-Authenticate`` challenge or a cookie quoting the token — and the process that
    logs does not know every secret of every request (a token endpoint's, a probe's, an MCP upstream's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("receive_response_headers.complete "):
            head = _HEADERS_TRACE.match(record.msg)
            kept = head.group(1) if head is not None else "receive_response_headers.complete return_value=("
            record.msg, record.args = kept + ", [headers not logged])", ()
        return True
