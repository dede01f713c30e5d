"""Header values without surrounding whitespace, whatever HTTP parser served the request.

RFC 9110 §5.5: a field value excludes the optional whitespace around it. h11 strips it; httptools
(uvicorn's choice where installed, as with ``toolbridge serve``) keeps trailing whitespace, so
``Idempotency-Key: abc `` or ``Mcp-Name: calc `` would otherwise differ from what the client meant.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["StripOws", "without_ows"]

_OWS = (b" ", b"\t")
_STRIPPED = "toolbridge.ows_stripped"
"""Set in a scope whose header values were looked at: a surface behind the middleware need not again."""


def without_ows(scope: Scope) -> Scope:
    """``scope`` with its header values stripped (the same scope, marked, when none needed it)."""
    if scope.get(_STRIPPED):
        return scope
    raw = scope["headers"]
    if not any(value[:1] in _OWS or value[-1:] in _OWS for _, value in raw):
        scope[_STRIPPED] = True
        return scope
    return {**scope, "headers": [(name, value.strip(b" \t")) for name, value in raw], _STRIPPED: True}


class StripOws:
    """ASGI middleware applying :func:`without_ows` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(without_ows(scope) if scope["type"] == "http" else scope, receive, send)
