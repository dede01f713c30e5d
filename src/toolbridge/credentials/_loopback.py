"""The loopback callback server of ``toolbridge connect``: 127.0.0.1 only, one successful callback.

Requests to any other path get 404 and the server keeps waiting; a callback that fails a check ends the
flow with that error (its state is burnt). The page shown never contains a token or a code.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import urlsplit

import anyio
from anyio.abc import SocketStream
from anyio.streams.stapled import MultiListener

from toolbridge.credentials._connect import Authorization, ConnectFlow
from toolbridge.credentials._store import Connection
from toolbridge.errors import ConfigurationError, ToolbridgeError, UpstreamTimeout

__all__ = ["connect_on_loopback"]

_MAX_REQUEST = 16_384


async def connect_on_loopback(
    flow: ConnectFlow,
    connector: str,
    account: str,
    *,
    show: Callable[[Authorization], None],
    wait: float = 600.0,
    owner: str = "",
    redirect_uri: str | None = None,
) -> Connection:
    """Start the flow, show its URL, and complete it on the redirect URI's loopback port: ``redirect_uri``,
    else the connector's ``connections.redirect_uri`` (which may be the server's own callback)."""
    binding = flow.manager.binding(connector)
    redirect = redirect_uri or binding.redirect_uri or "http://127.0.0.1:8765/callback"
    parts = urlsplit(redirect)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        raise ConfigurationError(
            f"the redirect URI {redirect} is not a loopback URL with a port",
            hint="give 'toolbridge connect' one with --redirect-uri, e.g. http://127.0.0.1:8765/callback "
            "(registered with the provider too)",
        )
    flow.check_connectable(connector)
    listener = await _listen(parts.port, redirect)
    outcome: list[Connection | ToolbridgeError] = []
    async with listener:
        authorization = await flow.start(connector, account, redirect_uri=redirect, owner=owner)
        show(authorization)
        async with anyio.create_task_group() as tg:

            async def handle(stream: SocketStream) -> None:
                try:
                    async with stream:
                        result = await _serve_one(stream, flow, redirect, parts.path)
                except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                    return  # the browser went away; keep waiting
                if result is not None:
                    outcome.append(result)
                    tg.cancel_scope.cancel()

            with anyio.move_on_after(wait):
                tg.start_soon(listener.serve, handle)
                await anyio.sleep_forever()
            tg.cancel_scope.cancel()
    if not outcome:
        raise UpstreamTimeout(f"no callback arrived within {wait:g} s", hint="run 'toolbridge connect' again")
    if isinstance(outcome[0], ToolbridgeError):
        raise outcome[0]
    return outcome[0]


async def _listen(port: int, redirect: str) -> MultiListener[SocketStream]:
    try:
        return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    except OSError as exc:  # it said "Address already in use; hint: check the path or permission named above"
        raise ConfigurationError(
            f"cannot wait for the callback of {redirect} on 127.0.0.1:{port}: {exc.strerror or exc}",
            hint="is toolbridge serve (or another program) listening there? give 'toolbridge connect' "
            "--redirect-uri http://127.0.0.1:FREE_PORT/callback (registered with the provider), or connect "
            "through the server: POST /v1/connections/connect",
        ) from None


async def _serve_one(
    stream: SocketStream, flow: ConnectFlow, redirect: str, path: str
) -> Connection | ToolbridgeError | None:
    head = await _read_head(stream)
    target = head.split(" ", 2)[1] if head.count(" ") >= 2 else ""
    if urlsplit(target).path != path:
        await _reply(stream, 404, "Not found.")
        return None
    base = redirect[: redirect.index(path, len("http://"))] if path else redirect
    try:
        connection = await flow.complete(base + target)
    except ToolbridgeError as exc:
        await _reply(stream, 400, f"Not connected: {exc.message}")
        return exc
    await _reply(
        stream, 200, f"Connected {connection.connector} as {connection.account}. You can close this tab."
    )
    return connection


async def _read_head(stream: SocketStream) -> str:
    data = b""
    with anyio.move_on_after(10):
        while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
            chunk = await stream.receive(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


async def _reply(stream: SocketStream, status: int, text: str) -> None:
    body = f"<!doctype html><title>toolbridge</title><p>{html.escape(text)}</p>".encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    await stream.send(head + body)
