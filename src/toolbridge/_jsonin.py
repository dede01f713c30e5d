"""JSON from outside (request bodies, webhook deliveries) read the one way every surface reads it.

``json.loads`` lets through what toolbridge cannot store or answer with, and fails on some input in ways
that are not ``ValueError``: nesting a few thousand levels deep raises ``RecursionError``; ``NaN`` and
``Infinity`` are accepted, though JSON has no such numbers; an escaped lone surrogate (``"\\ud800"``) is
accepted, and later fails to encode as UTF-8 wherever the value is written (the audit digest, the event
log). :func:`loads` refuses all of them with a ``ValueError`` that says what was wrong, as it does for
malformed JSON, bytes that are not UTF-8 and integers of more than 4300 digits.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_STORED_INT", "loads"]

MAX_STORED_INT = 2**63 - 1
"""The largest integer a cursor, version or offset may be: SQLite and PostgreSQL store 64 bits, and a larger
one failed deep inside as ``OverflowError`` (a 502 "toolbridge bug"). Schemas cap their integers at it."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""An escape of a UTF-16 surrogate: a pair is one character once decoded, a lone one is not text."""


def loads(data: bytes) -> Any:
    """``data`` parsed as JSON; ``ValueError`` (with the reason) for anything that is not plain JSON text."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except ValueError as exc:
        if str(exc).startswith("Exceeds the limit"):  # its own advice is sys.set_int_max_str_digits()
            raise ValueError("a number in it has more than 4300 digits") from None
        raise
    if _SURROGATE_ESCAPE.search(data) and not _is_text(value):
        raise ValueError(r"a string holds a lone UTF-16 surrogate escape (\ud800-\udfff), which is not text")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _is_text(value: Any) -> bool:
    """Whether every string in ``value`` (keys too) encodes as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True
