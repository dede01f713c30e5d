"""Where an upstream MCP server lives and how toolbridge treats its tools: small frozen value objects."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from toolbridge.catalog import ToolAnnotations
from toolbridge.errors import ConfigurationError

__all__ = ["Approval", "HttpServer", "Protocol", "StdioServer", "ToolRules", "Transport"]

Protocol = Literal["auto", "2025-11-25", "2026-07-28"]
"""``auto`` probes ``server/discover`` (2026-07-28) and falls back to the ``initialize`` handshake."""
Transport = Literal["auto", "streamable-http", "sse"]
"""How an :class:`HttpServer` is spoken to. ``auto`` POSTs to the URL (streamable HTTP) and, when that is
refused with 400, 404 or 405, opens the legacy 2024-11-05 HTTP+SSE transport with a GET of the same URL."""
Approval = Literal["manual", "all-on-first-connect"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StdioServer:
    """A local MCP server toolbridge starts as a subprocess and talks to over stdin/stdout.

    The process gets ``env`` and nothing of toolbridge's own environment except ``PATH``, ``HOME``,
    ``LANG`` and the like (see ``_stdio.INHERITED``): secrets reach it only when configured here.
    """

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cwd: str | None = None
    protocol: Protocol = "auto"
    start_timeout: float = 60.0
    """Seconds the process may take to answer its first request (``npx``/``uvx`` install on a first run);
    the log notes the wait every probe timeout (10 s). A process that answers nothing in that time is
    replaced by a fresh one asked in the handshake era, and failures are retried with backoff."""

    def __repr__(self) -> str:  # env values may be secrets
        return f"StdioServer(command={self.command!r}, args={self.args!r}, env=<{len(self.env)} vars>)"


@dataclass(frozen=True, slots=True)
class HttpServer:
    """A remote MCP server reached over streamable HTTP (``http://`` only on loopback, else ``https://``),
    or over the legacy HTTP+SSE transport (``url`` is then the SSE stream's, often ``/sse``)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    protocol: Protocol = "auto"
    transport: Transport = "auto"
    proxy: str | None = None
    """An HTTP(S) proxy every request goes through (``http://host:port``); None: direct."""
    ca_file: str | None = None
    """A PEM file of the CA certificates that verify the server (a private CA); None: the system's."""
    client_cert: str | None = None
    """A PEM file with the client certificate (mTLS), and its key unless ``client_key`` names another."""
    client_key: str | None = None
    fast_path: bool | None = None
    """True: HTTP/1.1 spoken by toolbridge's own small client (``_fastpath``); False: httpx2's client
    (httpcore); None (the default): the fast path unless a ``proxy`` is given, which only httpx2 honours."""

    @property
    def fast(self) -> bool:
        """Whether requests go by the fast path (see :attr:`fast_path`)."""
        return self.fast_path if self.fast_path is not None else self.proxy is None

    def __post_init__(self) -> None:
        if self.transport == "sse" and self.protocol == "2026-07-28":
            raise ConfigurationError(
                f"{self.url!r}: the legacy SSE transport has no 2026-07-28 (stateless) era",
                hint="use transport: streamable-http, or protocol: auto / 2025-11-25",
            )
        if self.fast_path is True and self.proxy is not None:
            raise ConfigurationError(
                f"{self.url!r}: the fast path speaks to the server directly, not through a proxy",
                hint="drop fast_path (with a proxy, requests go by httpx2, which honours it) or the proxy",
            )
        if self.client_key is not None and self.client_cert is None:
            raise ConfigurationError(
                f"{self.url!r}: client_key is given without client_cert",
                hint="name the client certificate's PEM file in client_cert",
            )

    def __repr__(self) -> str:  # header values may be secrets
        return (
            f"HttpServer(url={self.url!r}, headers=<{len(self.headers)}>, transport={self.transport!r}, "
            f"proxy={_no_userinfo(self.proxy)!r})"
        )


@dataclass(frozen=True, slots=True)
class ToolRules:
    """What toolbridge decides about upstream tools; upstream annotations can only restrict them.

    ``read_only`` and ``destructive`` are patterns over the upstream tool name (``get_*``); a tool
    matching neither may write (it is not read-only) and is not destructive. An upstream's
    ``destructiveHint: true`` makes a tool destructive (and so not read-only) whatever the patterns say;
    its ``readOnlyHint`` and ``idempotentHint`` never make a tool read-only or idempotent (those decide
    scopes and retries); its ``openWorldHint`` is kept.
    """

    read_only: tuple[str, ...] = ()
    destructive: tuple[str, ...] = ()
    idempotent: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    """Upstream tools left out of the catalog altogether."""

    def annotations(self, upstream: str, hints: object = None) -> ToolAnnotations:
        """The tool's annotations, from the patterns and the upstream's ``hints`` (its ``annotations``)."""
        said = hints if isinstance(hints, dict) else {}
        destructive = said.get("destructiveHint") is True
        read_only = _matches(upstream, self.read_only) and not destructive
        return ToolAnnotations(
            read_only=read_only,
            destructive=destructive or (not read_only and _matches(upstream, self.destructive)),
            idempotent=read_only or _matches(upstream, self.idempotent),
            open_world=said.get("openWorldHint") is not False,
        )

    def hidden(self, upstream: str) -> bool:
        return _matches(upstream, self.hide)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _no_userinfo(url: str | None) -> str | None:
    """A proxy URL without its user and password (they may be secrets)."""
    if url is None or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
