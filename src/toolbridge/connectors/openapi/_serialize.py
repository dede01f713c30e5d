"""Parameter serialization for every OpenAPI ``style`` and ``explode`` (OpenAPI 3.1 §4.8.12.4 tables).

Path values come back percent-encoded and ready to substitute; query and cookie values come back as
encoded ``name=value`` pairs; header values as text. Delimiters that a style defines (``,``, ``.``,
``;``, ``=``, ``|``, ``%20``) are never encoded; everything inside a value is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["encode", "path_value", "query_pairs", "header_value", "cookie_pairs", "scalar"]

_RESERVED = ":/?#[]@!$&'()*+,;="


def scalar(value: Any) -> str:
    """A primitive as text: booleans in lower case, null as empty, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return int.__repr__(value)  # what json.dumps writes for an int (an IntEnum too), at a tenth of it
    if isinstance(value, float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode(text: str, *, allow_reserved: bool = False) -> str:
    return quote(text, safe=_RESERVED if allow_reserved else "")


def _items(value: Any) -> list[tuple[str, str]]:
    """Object members (or array items with empty keys) as text pairs."""
    if isinstance(value, Mapping):
        return [(str(k), scalar(v)) for k, v in value.items()]
    return [("", scalar(v)) for v in value]


def path_value(name: str, value: Any, style: str, explode: bool) -> str:
    """The text that replaces ``{name}`` in a path template (styles ``simple``, ``label``, ``matrix``)."""
    if style == "label":
        return _label(value, explode)
    if style == "matrix":
        return _matrix(name, value, explode)
    return _simple(value, explode, encoded=True)


def header_value(value: Any, explode: bool) -> str:
    """A header value (style ``simple``), not percent-encoded."""
    return _simple(value, explode, encoded=False)


def _simple(value: Any, explode: bool, *, encoded: bool) -> str:
    enc = encode if encoded else _plain
    if isinstance(value, Mapping):
        sep = "=" if explode else ","
        return ",".join(f"{enc(k)}{sep}{enc(v)}" for k, v in _items(value))
    if isinstance(value, list):
        return ",".join(enc(v) for _, v in _items(value))
    return enc(scalar(value))


def _plain(text: str, *, allow_reserved: bool = False) -> str:
    return text


def _label(value: Any, explode: bool) -> str:
    def enc(text: str) -> str:
        return encode(text).replace(".", "%2E")  # "." is the label delimiter: keep values unambiguous

    if isinstance(value, Mapping):
        if explode:
            return "".join(f".{enc(k)}={enc(v)}" for k, v in _items(value))
        return "." + ",".join(f"{enc(k)},{enc(v)}" for k, v in _items(value))
    if isinstance(value, list):
        sep = "." if explode else ","
        return "." + sep.join(enc(v) for _, v in _items(value))
    return "." + enc(scalar(value))


def _matrix(name: str, value: Any, explode: bool) -> str:
    key = encode(name)
    if isinstance(value, Mapping):
        if explode:
            return "".join(f";{encode(k)}={encode(v)}" for k, v in _items(value))
        return f";{key}=" + ",".join(f"{encode(k)},{encode(v)}" for k, v in _items(value))
    if isinstance(value, list):
        if explode:
            return "".join(f";{key}={encode(v)}" for _, v in _items(value))
        return f";{key}=" + ",".join(encode(v) for _, v in _items(value))
    text = scalar(value)
    return f";{key}={encode(text)}" if text else f";{key}"


_DELIMITERS = {"spaceDelimited": "%20", "pipeDelimited": "|", "tabDelimited": "%09"}


def query_pairs(
    name: str, value: Any, style: str, explode: bool, *, allow_reserved: bool = False
) -> list[str]:
    """Encoded ``name=value`` strings for a query parameter (``form``, ``*Delimited``, ``deepObject``)."""

    def enc(text: str) -> str:
        return encode(text, allow_reserved=allow_reserved)

    key = encode(name)
    if style == "deepObject" and isinstance(value, Mapping | list):
        return _deep(key, value, enc)
    if isinstance(value, Mapping):
        if explode:
            return [f"{encode(k)}={enc(v)}" for k, v in _items(value)]
        return [f"{key}=" + ",".join(f"{enc(k)},{enc(v)}" for k, v in _items(value))]
    if isinstance(value, list):
        if explode:
            return [f"{key}={enc(v)}" for _, v in _items(value)]
        sep = _DELIMITERS.get(style, ",")
        return [f"{key}=" + sep.join(enc(v) for _, v in _items(value))]
    return [f"{key}={enc(scalar(value))}"]


def _deep(key: str, value: Mapping[str, Any] | list[Any], enc: Any) -> list[str]:
    """``key[member]=…`` at every depth; a list's items by index (``key[0][type]=…``), as the servers that
    read nested forms (Stripe, Rails, PHP, ``qs``) and prism do. OpenAPI leaves arrays here undefined."""
    members = value.items() if isinstance(value, Mapping) else enumerate(value)
    pairs: list[str] = []
    for member, inner in members:
        name = f"{key}%5B{encode(str(member))}%5D"
        if isinstance(inner, Mapping | list):
            pairs.extend(_deep(name, inner, enc))
        else:
            pairs.append(f"{name}={enc(scalar(inner))}")
    return pairs


def cookie_pairs(name: str, value: Any, explode: bool) -> list[tuple[str, str]]:
    """Cookie ``(name, value)`` pairs (style ``form``); exploded objects become one cookie per member."""
    if isinstance(value, Mapping) and explode:
        return [(k, encode(v)) for k, v in _items(value)]
    if isinstance(value, Mapping):
        return [(name, ",".join(f"{encode(k)},{encode(v)}" for k, v in _items(value)))]
    if isinstance(value, list):
        if explode:
            return [(name, encode(v)) for _, v in _items(value)]
        return [(name, ",".join(encode(v) for _, v in _items(value)))]
    return [(name, encode(scalar(value)))]
