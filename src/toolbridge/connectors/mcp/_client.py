"""The HTTP client under a connector's MCP channels: one pooled ``httpx2.AsyncClient`` per connector.

It honours the connector's proxy, private CA and client certificate (mTLS). The transport is a seam, as
in httpx: pass one (``httpx2.MockTransport`` in tests) and it is used as it is; else toolbridge's own
HTTP/1.1 (``_fastpath``, the default without a proxy: see ``HttpServer.fast_path``) or httpcore's. The
environment is never read (no proxy or CA from ``HTTP_PROXY``/``SSL_CERT_FILE``): configuration comes
from the connector's settings only. Cookies an upstream sets are not kept, and redirects are not followed
(credentials must not go elsewhere).

httpcore's pool leaves a connection's socket open when the TLS handshake is cancelled (a call's deadline,
a connector closing while it reconnects): its ``start_tls`` closes the socket on errors only. The pool
here runs on a network backend that closes it on cancellation too.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._fastpath import IDLE_TIMEOUT, FastTransport
from toolbridge.connectors.openapi._egress import no_cookie_jar
from toolbridge.errors import ConfigurationError

__all__ = ["upstream_client"]

_TIMEOUT = httpx2.Timeout(None, connect=10.0)
"""Connecting is bounded here; answers are bounded by each call's deadline (an SSE answer may be long)."""
_LIMITS = httpx2.Limits(max_connections=None, max_keepalive_connections=16, keepalive_expiry=IDLE_TIMEOUT)
"""Idle connections as on the fast path, for less time than servers keep them (httpcore reads no
``Keep-Alive`` header: a server announcing less than :data:`IDLE_TIMEOUT` plus a margin is not honoured)."""


def upstream_client(
    server: HttpServer, *, transport: httpx2.AsyncBaseTransport | None = None
) -> httpx2.AsyncClient:
    """A client for ``server`` (close it with ``aclose``)."""
    if transport is None:
        context = tls_context(server)
        if server.fast:
            transport = FastTransport(context)
        else:
            transport = httpx2.AsyncHTTPTransport(
                verify=context, proxy=server.proxy, limits=_LIMITS, trust_env=False
            )
            # httpx2's transport takes no network backend; the httpcore pool under it does
            pool = transport._pool
            pool._network_backend = ClosingBackend(pool._network_backend)
    return httpx2.AsyncClient(
        transport=transport,
        timeout=_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        cookies=no_cookie_jar(),
    )


def tls_context(server: HttpServer) -> ssl.SSLContext:
    """The TLS settings of ``server``: its CA file (else the system's CAs) and client certificate."""
    try:
        context = ssl.create_default_context(cafile=server.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot read the CA file {server.ca_file!r} of {server.url!r}: {exc}",
            hint="ca_file names a PEM file of CA certificates",
        ) from exc
    if server.client_cert is not None:
        try:
            context.load_cert_chain(server.client_cert, server.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot load the client certificate {server.client_cert!r} of {server.url!r}: {exc}",
                hint="client_cert names a PEM file with the certificate (and its key, or give client_key)",
            ) from exc
    return context


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
