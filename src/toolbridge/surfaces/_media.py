"""Media types at the JSON routes of ``/v1``: a ``406`` when the ``Accept`` header allows no JSON answer, a
``415`` when a body comes in a type the route cannot read. Both are problem documents saying what to send.

Without this, an ``Accept: application/xml`` got JSON with a 200 (RFC 9110 §12.5.1: a server that cannot
answer in an acceptable type answers 406, or ignores the header — toolbridge answers only JSON, so a
client asking for something else is told so), and a body sent as XML got a 400 about its JSON.

Routes say which rule applies to them by patterns over ``"METHOD /path"`` (the path inside the mounted
application): those that answer something else than JSON (a downloaded file, tus, a page), those that read
a JSON body whatever its declared type among JSON, a form and plain text (the tool call: ``curl -d`` sends
JSON as a form), and those that read only a JSON body (FastAPI's). ``Accept`` is read with its q-values
and precedence: ``application/json;q=0`` refuses JSON even beside ``*/*``.
"""

from __future__ import annotations

import json
import re
from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["JsonMedia", "accepts_json", "reads_as_json"]

_PROBLEM: Final = b"application/problem+json"
_JSON: Final = ("application", "json")
_LENIENT: Final = frozenset({"application/json", "application/x-www-form-urlencoded", "text/plain"})
_NEVER: Final = re.compile(r"(?!)")


def accepts_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header allows ``application/json``: the q-value of its most specific range that
    matches is above 0 (no header, or an empty one, allows anything). A ``+json`` type counts as JSON."""
    if accept is None or not accept.strip():
        return True
    best: tuple[int, float] = (0, 0.0)  # (how specific, q)
    for item in accept.split(","):
        kind, _, params = item.partition(";")
        main, _, sub = kind.strip().lower().partition("/")
        if (main, sub) == _JSON or (main == "application" and sub.endswith("+json")):
            rank = 3
        elif (main, sub) == ("application", "*"):
            rank = 2
        elif (main, sub) == ("*", "*"):
            rank = 1
        else:
            continue
        if rank > best[0]:
            best = (rank, _q(params))
        elif rank == best[0]:
            best = (rank, max(best[1], _q(params)))
    return best[1] > 0


def _q(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 1.0
    return 1.0


def reads_as_json(content_type: str | None, *, lenient: bool) -> bool:
    """Whether a body of ``content_type`` is read as JSON: JSON (``application/json``, a ``+json`` type) or
    no type at all; on a lenient route also a form or plain text that holds JSON (``curl -d``)."""
    if content_type is None:
        return True
    main, _, sub = content_type.partition(";")[0].strip().lower().partition("/")
    if (main, sub) == _JSON or (main == "application" and sub.endswith("+json")):
        return True
    return lenient and f"{main}/{sub}" in _LENIENT


class JsonMedia:
    """ASGI middleware checking ``Accept`` and ``Content-Type`` at the JSON routes of ``app`` (see the
    module docstring); ``not_json``, ``lenient`` and ``strict`` are regular expressions over ``"METHOD
    /path"``."""

    def __init__(self, app: ASGIApp, *, not_json: str = "", lenient: str = "", strict: str = "") -> None:
        self.app = app
        self._not_json = re.compile(not_json) if not_json else _NEVER
        self._lenient = re.compile(lenient) if lenient else _NEVER
        self._strict = re.compile(strict) if strict else _NEVER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        route = f"{scope['method']} {_route_path(scope)}"
        where = f"{scope['method']} {scope['path']}"
        if not self._not_json.fullmatch(route) and not accepts_json(headers.get("accept")):
            await _refuse(
                send,
                406,
                "Not Acceptable",
                f"{where} answers application/json (and its errors application/problem+json), which the "
                f"Accept header {headers.get('accept')!r} does not allow",
                "send 'Accept: application/json', or no Accept header",
            )
            return
        lenient = bool(self._lenient.fullmatch(route))
        if (lenient or self._strict.fullmatch(route)) and _has_body(headers):
            kind = headers.get("content-type")
            if not reads_as_json(kind, lenient=lenient):
                await _refuse(
                    send,
                    415,
                    "Unsupported Media Type",
                    f"{where} reads a JSON body, not {kind!r}",
                    f"send the body as JSON with 'Content-Type: application/json' (this one said {kind})",
                    [(b"accept-post", b"application/json")] if scope["method"] == "POST" else [],
                )
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path inside the mounted application (Starlette keeps the whole path in ``path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    inside = path[len(root) :] if root and path.startswith(root) else path
    return inside or "/"


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


async def _refuse(
    send: Send,
    status: int,
    title: str,
    detail: str,
    hint: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, "hint": hint}
    ).encode()
    headers = [(b"content-type", _PROBLEM), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
