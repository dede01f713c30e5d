"""httpx2 transports that do not leak a socket when a TLS handshake is cancelled.

httpcore2's pool leaves a connection's socket open when ``start_tls`` is cancelled (a call's deadline,
a worker stopping, a connector closing while it reconnects): its ``start_tls`` closes the socket on
``Exception`` only. The socket is then closed by the garbage collector, with a ``ResourceWarning``, in
whatever runs next. Every httpx2 client toolbridge makes for itself runs on :func:`closing_transport`,
whose network backend closes the stream on any failure of ``start_tls``, cancellation included.
A transport given by the caller (a mock in tests, a custom one) is used as it is.

httpcore2 traces each response's headers at DEBUG, and an upstream may reflect a credential there: the
first :func:`closing_transport` puts :class:`toolbridge._redact.ResponseHeadersFilter` on its loggers.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from toolbridge._redact import ResponseHeadersFilter

__all__ = ["ClosingBackend", "closing_transport"]

_HEADERS_FILTER = ResponseHeadersFilter()
_TRACED = ("httpcore2.http11", "httpcore2.http2")
"""httpcore2's loggers that trace a response's headers."""


def closing_transport(
    *,
    verify: ssl.SSLContext | bool = True,
    proxy: str | None = None,
    limits: httpx2.Limits | None = None,
) -> httpx2.AsyncHTTPTransport:
    """httpx2's transport with :class:`ClosingBackend` under its pool; the environment is never read."""
    for name in _TRACED:  # a logger keeps one copy of a filter
        logging.getLogger(name).addFilter(_HEADERS_FILTER)
    options: dict[str, Any] = {} if limits is None else {"limits": limits}  # else httpx2's default
    transport = httpx2.AsyncHTTPTransport(verify=verify, proxy=proxy, trust_env=False, **options)
    # httpx2's transport takes no network backend; the httpcore pool under it does
    pool = transport._pool
    pool._network_backend = ClosingBackend(pool._network_backend)
    return transport


class ClosingBackend(httpcore2.AsyncNetworkBackend):
    """``backend`` whose streams are closed when ``start_tls`` fails in any way, cancellation included."""

    def __init__(self, backend: httpcore2.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _ClosingStream(
            await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - as above
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _ClosingStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _ClosingStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self.read = stream.read  # type: ignore[method-assign]  # the hot path skips this wrapper
        self.write = stream.write  # type: ignore[method-assign]

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore2.AsyncNetworkStream:
        try:
            return _ClosingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))
        except BaseException:  # a cancelled handshake too (the point of this class); re-raised
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
