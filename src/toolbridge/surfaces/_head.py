"""``HEAD`` answered as ``GET`` without its body, where no route takes ``HEAD`` itself (RFC 9110 §9.3.2:
a server that answers GET should answer HEAD the same, headers included).

FastAPI's routes take only the methods they name, so ``HEAD /v1/tools`` (``curl -I``, link checkers,
caches revalidating) was a 405. Routes that do take ``HEAD`` (tus's upload offset) keep their own answer:
the request is first sent as it is, and only a 405 is replaced by the ``GET``'s headers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet"]


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` that ``app`` answers 405 is answered as ``GET``, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def unless_refused(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, _bodiless(receive), unless_refused)
        if not refused:
            return
        ended = False

        async def bodiless(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)  # the start: status and headers as the GET's (Content-Length too)
            elif not ended and not message.get("more_body", False):
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, _bodiless(receive), bodiless)


def _bodiless(receive: Receive) -> Receive:
    """``receive`` of a request without a body (a HEAD has none; the GET made of it gets none either): the
    empty body, then what the client does next (it goes away). A streamed answer reads on until the client
    goes away; answered the empty body on every read, that loop never yielded and froze the server."""
    read = False

    async def nothing_more() -> Message:
        nonlocal read
        if read:
            return await receive()
        read = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return nothing_more
