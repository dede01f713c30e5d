"""``X-Request-Id`` on every REST response: the caller's (when it is a sane token) or a fresh one.

A request without one gets an id here, put into its headers, so the handler, the audit row and the
response all carry the same id; the caller can quote it when asking what happened.
"""

from __future__ import annotations

import itertools
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIds"]

_HEADER = b"x-request-id"
_MAX = 200
_PREFIX = "rq" + secrets.token_hex(4)
_COUNT = itertools.count(1)


def _usable(value: bytes) -> bool:
    return 0 < len(value) <= _MAX and all(0x21 <= b <= 0x7E for b in value)


class RequestIds:
    """ASGI middleware: every HTTP response gets the request's ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != _HEADER]
        given = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        rid = given if _usable(given) else f"{_PREFIX}{next(_COUNT):08x}".encode()
        scope = {**scope, "headers": [*headers, (_HEADER, rid)]}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*out, (_HEADER, rid)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
