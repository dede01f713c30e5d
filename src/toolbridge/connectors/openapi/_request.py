"""Tool arguments → the HTTP request the operation expects (URL, query, headers, cookies, body)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolbridge.connectors.openapi._model import Body, Operation, Parameter
from toolbridge.connectors.openapi._multipart import Part, encode
from toolbridge.connectors.openapi._serialize import (
    cookie_pairs,
    header_value,
    path_value,
    query_pairs,
    scalar,
)
from toolbridge.connectors.openapi._wire import Outgoing
from toolbridge.errors import InvalidArguments

__all__ = ["Draft", "build_request", "file_bytes"]


@dataclass(slots=True)
class Draft:
    """A request being assembled (security schemes and pagination add to it before it is sent)."""

    method: str
    url: str
    query: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None

    def outgoing(self) -> Outgoing:
        url = self.url + "?" + "&".join(self.query) if self.query else self.url
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies)
        return Outgoing(self.method, url, headers, self.content)


def build_request(operation: Operation, arguments: Mapping[str, Any], base_url: str) -> Draft:
    """The request for one call of ``operation`` (arguments already validated against its schema)."""
    draft = Draft(operation.method, base_url.rstrip("/") + _path(operation, arguments))
    for parameter in operation.parameters:
        if parameter.location != "path" and parameter.arg in arguments:
            _add_parameter(draft, parameter, arguments[parameter.arg])
    for fixed in operation.fixed:
        _add_fixed(draft, fixed.location, fixed.name, fixed.value)
    if operation.accept:
        draft.headers.setdefault("Accept", operation.accept)
    if operation.body is not None:
        _add_body(draft, operation, operation.body, arguments)
    return draft


def _path(operation: Operation, arguments: Mapping[str, Any]) -> str:
    path = operation.path
    for parameter in operation.parameters:
        if parameter.location == "path":
            if arguments.get(parameter.arg) is None:
                raise _missing_path_argument(operation, parameter)
            value = _value(parameter, arguments[parameter.arg])
            path = path.replace(
                "{" + parameter.name + "}",
                path_value(parameter.name, value, parameter.style, parameter.explode),
            )
    for fixed in operation.fixed:
        if fixed.location == "path":
            path = path.replace("{" + fixed.name + "}", fixed.value)
    _refuse_lost_segments(operation, path)
    return path


def _refuse_lost_segments(operation: Operation, path: str) -> None:
    """A value that makes a whole segment ``.`` or ``..`` is removed with the segment before it when the
    URL is normalized (RFC 3986 §5.2.4; httpx2 does it), so the call would go to another resource:
    ``DELETE /repos/{owner}/{repo}/comments/{id}`` with id ``..`` deletes ``/repos/{owner}/{repo}``.
    Percent-encoding the dots is no cure (many servers decode before they normalize): refuse. So is an
    empty value that leaves an empty segment: ``/repos//labels`` is merged into ``/repos/labels`` by
    many servers and proxies, or answered for another route. Values never add segments (``/`` is
    encoded), so the path's segments line up with the template's."""
    for template, segment in zip(operation.path.split("/"), path.split("/"), strict=False):
        if segment in ("", ".", "..") and template != segment:
            names = [p for p in operation.parameters if p.location == "path" and f"{{{p.name}}}" in template]
            args = [p.arg for p in names] or [template]
            if segment:
                what, why = f"{segment!r}, which addresses", "'.' and '..' are not values of a path segment"
                hint = "give the identifier itself: '.' and '..' name no resource here"
            else:
                what, why = "empty, which addresses", "an empty string leaves its URL path segment empty"
                hint = f"give {' and '.join(map(repr, args))} a value: {operation.path} needs each part"
            raise InvalidArguments(
                f"{operation.tool}: {' and '.join(map(repr, args))} would make the URL path segment "
                f"{what} another resource ({operation.method} {operation.path})",
                errors=[{"field": a, "error": why} for a in args],
                tool=operation.tool,
                hint=hint,
            )


def _missing_path_argument(operation: Operation, parameter: Parameter) -> InvalidArguments:
    """Sending ``{placeholder}`` literally would address some other resource, or none: refuse."""
    arg, where = parameter.arg, f"{{{parameter.name}}} in {operation.method} {operation.path}"
    return InvalidArguments(
        f"{operation.tool} needs argument {arg!r}: it fills {where}",
        errors=[{"field": arg, "error": "required: part of the URL path"}],
        tool=operation.tool,
        hint=f"call {operation.tool} again with {arg!r} set",
    )


def _value(parameter: Parameter, value: Any) -> Any:
    """Parameters described by ``content`` are sent as their JSON text."""
    if parameter.content_type is not None and not isinstance(value, str):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _add_parameter(draft: Draft, parameter: Parameter, raw: Any) -> None:
    value = _value(parameter, raw)
    if parameter.location == "query":
        draft.query.extend(
            query_pairs(
                parameter.name,
                value,
                parameter.style,
                parameter.explode,
                allow_reserved=parameter.allow_reserved,
            )
        )
    elif parameter.location == "header":
        draft.headers[parameter.name] = _header_text(parameter, header_value(value, parameter.explode))
    elif parameter.location == "cookie":
        draft.cookies.extend(cookie_pairs(parameter.name, value, parameter.explode))


def _header_text(parameter: Parameter, text: str) -> str:
    """A header value is visible ASCII, spaces and tabs (RFC 9110 §5.5): anything else failed inside
    toolbridge (httpx2: UnicodeEncodeError) or was reported as an unreachable upstream, to be retried (the
    default wire refuses to send it). Say which argument, and what it may hold."""
    if text.isascii() and all(" " <= c < "\x7f" or c == "\t" for c in text):
        return text
    raise InvalidArguments(
        f"argument {parameter.arg!r} is sent as the HTTP header {parameter.name!r}, which carries only "
        "printable ASCII: no accented letters, other non-ASCII characters or line breaks",
        errors=[{"field": parameter.arg, "error": "not printable ASCII (an HTTP header value)"}],
        hint=f"call again with {parameter.arg!r} in printable ASCII",
    )


def _add_fixed(draft: Draft, location: str, name: str, value: str) -> None:
    if location == "query":
        draft.query.extend(query_pairs(name, value, "form", True))
    elif location == "header":
        draft.headers[name] = value
    elif location == "cookie":
        draft.cookies.extend(cookie_pairs(name, value, True))


def _add_body(draft: Draft, operation: Operation, body: Body, arguments: Mapping[str, Any]) -> None:
    if body.arg is not None:
        if body.arg not in arguments:
            return
        payload: Any = arguments[body.arg]
    else:
        payload = {f.name: arguments[f.arg] for f in body.fields if f.arg in arguments}
        if not payload and not body.required:
            return
    for name in [h for h in draft.headers if h.lower() == "content-type"]:
        del draft.headers[name]  # the body's media type wins over a declared constant
    if body.kind == "multipart":
        _multipart(draft, body, payload, operation)
        return
    draft.headers["Content-Type"] = body.media_type
    if body.kind == "json":
        draft.content = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    elif body.kind == "form":
        draft.content = _form(payload, body).encode()
    else:
        draft.content = encoded(file_bytes(payload, operation.tool, body.arg or "body"), body.encoding)


def _form(payload: Any, body: Body) -> str:
    """The fields as the body's Encoding Objects say (``style``, ``explode``; default ``form``, exploded):
    Stripe's ``shipping[name]=…`` went out as ``name=…``, colliding with the top-level field."""
    specs = {f.name: f for f in body.fields}
    pairs: list[str] = []
    for key, value in (payload or {}).items():
        spec = specs.get(key)
        style = spec.style if spec is not None and spec.style else "form"
        explode = spec.explode if spec is not None and spec.explode is not None else style == "form"
        pairs.extend(query_pairs(str(key), value, style, explode))
    return "&".join(pairs)


def _multipart(draft: Draft, body: Body, payload: Any, operation: Operation) -> None:
    specs = {f.name: f for f in body.fields}
    parts: list[Part] = []
    for key, value in (payload or {}).items():
        spec = specs.get(key)
        if spec is not None and spec.binary:
            content = encoded(file_bytes(value, operation.tool, spec.arg), spec.encoding)
            parts.append(Part(key, content, key, spec.content_type or "application/octet-stream"))
        elif spec is not None and "json" in (spec.content_type or ""):  # a part with its own type
            text = value if isinstance(value, str) else scalar(value)
            parts.append(Part(key, text.encode(), content_type=spec.content_type))
        else:
            items = value if isinstance(value, list) else [value]
            parts.extend(Part(key, scalar(item).encode()) for item in items)
    draft.headers["Content-Type"], draft.content = encode(parts)


def encoded(content: bytes, encoding: str | None) -> bytes:
    """File content as the document says it travels: raw, or as base64 text (3.1 ``contentEncoding``)."""
    if encoding == "base64":
        return base64.b64encode(content)
    if encoding == "base64url":
        return base64.urlsafe_b64encode(content)
    return content


def file_bytes(value: Any, tool: str, arg: str) -> bytes:
    """File content from an argument: text as UTF-8, or ``base64:…`` decoded."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else scalar(value)
    if text.startswith("base64:"):
        try:
            return base64.b64decode(text[7:], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArguments(
                f"argument {arg!r} of {tool!r} starts with 'base64:' but is not valid base64",
                errors=[{"field": arg, "error": "not valid base64"}],
                tool=tool,
                hint="send the bytes as standard base64 after 'base64:', or send plain text",
            ) from None
    return text.encode()
