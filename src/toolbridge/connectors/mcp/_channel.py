"""The transport under an upstream session: one JSON-RPC request in, its response message out.

Two channels implement :class:`Channel`: a subprocess over stdio (``_stdio``) and streamable HTTP
(``_http``). A channel raises :class:`~toolbridge.errors.UpstreamUnavailable` with ``sent`` telling
whether the request can have reached the server, and :class:`SessionExpired` when the server no longer
knows the session (HTTP 404): the session layer above starts a new one, once.

Credentials are explicit: each request and notification carries the ``httpx2.Auth`` of the connection
it is made for (``auth=``, as the OpenAPI connector passes it per request); a channel is built with the
credentials of the session's opener, which hold its standing stream and end the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx2

__all__ = ["Channel", "Message", "OnMessage", "SessionExpired"]

Message = dict[str, Any]
"""One JSON-RPC message, as decoded JSON (the wire edge: it never leaves this package)."""

OnMessage = Callable[[Message], Awaitable[Message | None]]
"""Handles a message the server sent on its own (a notification, or a request answered with the result)."""


class SessionExpired(Exception):
    """The server answered that it does not know our session (HTTP 404): start a new one."""


class Channel(Protocol):
    @property
    def alive(self) -> bool:
        """False once the channel is known to be broken (a new channel is needed)."""
        ...

    @property
    def describe(self) -> str:
        """What it is connected to, for messages (never a secret)."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def request(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> Message:
        """Send a request signed by ``auth`` (the credentials of the connection it is made for; None:
        none); return the response message (``result`` or ``error``) with its id."""
        ...

    async def notify(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> None: ...

    def forget_session(self) -> None:
        """Drop the transport-level session (``Mcp-Session-Id``) before a new handshake."""
        ...
