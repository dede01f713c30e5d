"""The HTTP client under a connector's MCP channels: one pooled ``httpx2.AsyncClient`` per connector.

It honours the connector's proxy, private CA and client certificate (mTLS). The transport is a seam, as
in httpx: pass one (``httpx2.MockTransport`` in tests) and it is used as it is; else toolbridge's own
HTTP/1.1 (``_fastpath``, the default without a proxy: see ``HttpServer.fast_path``) or httpcore's. The
environment is never read (no proxy or CA from ``HTTP_PROXY``/``SSL_CERT_FILE``): configuration comes
from the connector's settings only. Cookies an upstream sets are not kept, and redirects are not followed
(credentials must not go elsewhere).

httpcore's pool runs on :func:`toolbridge._httpclient.closing_transport` (no socket left open when a TLS
handshake is cancelled).
"""

from __future__ import annotations

import ssl

import httpx2

from toolbridge._httpclient import closing_transport
from toolbridge.connectors._fastpath import IDLE_TIMEOUT, FastTransport
from toolbridge.connectors.mcp._config import HttpServer
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
            transport = closing_transport(verify=context, proxy=server.proxy, limits=_LIMITS)
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
