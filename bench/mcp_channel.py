"""The MCP upstream channel's HTTP clients compared by CPU per exchange (docs/dependencies.md).

``tools/call echo`` on server-everything (streamable HTTP, its own process, 2025-11-25 session, answers as
SSE) through toolbridge's ``HttpChannel``, one keep-alive connection, sequentially, with each client the
channel could send with:

* ``httpx2 AsyncClient.send``: the connector's client over httpcore (``fast_path: false``; with a proxy);
* ``httpx2 transport, called directly``: httpcore's pool without the client's per-request machinery;
* ``aiohttp ClientSession``: aiohttp's session (C parser, protocol-based pool, what the OpenAPI connector
  sends with) in the fast path's place, read directly as the fast path's answers are (the adapter is here,
  not in ``src/``: it measured slower than the fast path, see docs/dependencies.md);
* ``fast path``: toolbridge's own HTTP/1.1 (``_fastpath``), the default without a proxy.

CPU time of this process per exchange (best of 3 runs of ``--calls``) and the median of the runs' wall
time, in ``--rounds`` rounds that visit every client in turn.

Usage: ``uv run python bench/mcp_channel.py [--calls 500] [--loop uvloop|asyncio]``. Needs tests/node.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx2
import uvloop
from yarl import URL

from _load import _CLIENT_INFO, HANDSHAKE
from _procs import free_port, running
from mcp_proxy import EVERYTHING, NODE, PRELOAD
from toolbridge.connectors._fastpath import FastTransport
from toolbridge.connectors.mcp._client import upstream_client
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._http import HttpChannel

HEADERS = {"mcp-protocol-version": HANDSHAKE}
HELLO = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": _CLIENT_INFO}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": HELLO}
ECHO = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"message": "hi"}},
}


class _Opens:
    """The fast transport's ``open`` (what the channel calls on the fast path) for another transport:
    the request built as an ``httpx2.Request`` and handed to it."""

    async def open(
        self,
        method: str,
        url: httpx2.URL,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        replayable: bool | None = None,
    ) -> httpx2.Response:
        request = httpx2.Request(method, url, headers=headers, content=body or None)
        return await self.handle_async_request(request)  # type: ignore[attr-defined, no-any-return]


class _DirectTransport(_Opens, httpx2.AsyncHTTPTransport):
    """httpx2's transport, its responses given their request (the client does that otherwise)."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        response.request = request
        return response


class _AiohttpAnswer:
    """An aiohttp response as the channel reads an answer (what the fast path's ``FastAnswer`` offers)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise httpx2.ReadError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read whole: the connection goes back to the pool
        else:
            self._response.close()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """aiohttp's ``ClientSession`` in the fast path's place (the candidate measured here): the channel
    hands it the header list and body, and reads its response directly, as it does the fast path's."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def open(
        self,
        method: str,
        url: httpx2.URL,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        replayable: bool | None = None,
    ) -> _AiohttpAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, connect=10.0),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        sent = [(k, v) for k, v in headers if k not in ("host", "content-length")]
        try:
            response = await self._session.request(
                method, URL(str(url), encoded=True), headers=sent, data=body or None, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise httpx2.ConnectError(str(exc)) from exc
        return _AiohttpAnswer(response)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise NotImplementedError("the channel calls open() (requests without credentials only)")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _nothing(message: object) -> None:
    return None


def _clients() -> dict[str, Callable[[], tuple[httpx2.AsyncClient, httpx2.AsyncBaseTransport | None]]]:
    """Each client as (the connector's httpx2 client, the transport the channel calls directly or None)."""

    def over(transport: httpx2.AsyncBaseTransport) -> tuple[httpx2.AsyncClient, httpx2.AsyncBaseTransport]:
        return upstream_client(HttpServer(url="http://127.0.0.1/"), transport=transport), transport

    return {
        "httpx2 AsyncClient.send": lambda: (
            upstream_client(HttpServer(url="http://127.0.0.1/", fast_path=False)),
            None,
        ),
        "httpx2 transport, called directly": lambda: over(_DirectTransport(trust_env=False)),
        "aiohttp ClientSession, read directly": lambda: over(AiohttpTransport()),
        "fast path (toolbridge's HTTP/1.1)": lambda: over(FastTransport()),
    }


async def measure(
    url: str, make: Callable[[], tuple[httpx2.AsyncClient, object]], calls: int
) -> tuple[float, float]:
    """Best CPU µs and median wall µs per exchange over 3 runs."""
    client, direct = make()
    channel = HttpChannel(HttpServer(url=url), _nothing, client=client, fast=direct)  # type: ignore[arg-type]
    await channel.start()
    try:
        await channel.request(INIT, {})
        await channel.notify({"jsonrpc": "2.0", "method": "notifications/initialized"}, HEADERS)
        for _ in range(min(200, calls)):
            await channel.request(ECHO, HEADERS)
        runs = []
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                await channel.request(ECHO, HEADERS)
            runs.append(((time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls))
    finally:
        await channel.aclose()
        await client.aclose()
        if direct is not None:
            await direct.aclose()  # type: ignore[attr-defined]
    return min(r[0] for r in runs) * 1e6, sorted(r[1] for r in runs)[1] * 1e6


async def run(url: str, calls: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    clients = _clients()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, make in clients.items():
            results[name].append(await measure(url, make, calls))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="exchanges per run (default 500)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    missing = [p for p in (NODE, EVERYTHING, PRELOAD) if not p.exists()]
    if missing:
        print(f"missing {', '.join(map(str, missing))}: run npm ci --prefix tests/node", file=sys.stderr)
        return 1
    port = free_port()
    argv = ["env", "-i", "PATH=/usr/bin:/bin", f"PORT={port}", f"NODE_OPTIONS=--require {PRELOAD}"]
    argv += [str(NODE), str(EVERYTHING), "streamableHttp"]
    with tempfile.TemporaryDirectory() as logs, running("server-everything", argv, port, Path(logs)):
        url = f"http://127.0.0.1:{port}/mcp"
        runner: Callable[
            [Awaitable[dict[str, list[tuple[float, float]]]]], dict[str, list[tuple[float, float]]]
        ]
        runner = uvloop.run if args.loop == "uvloop" else asyncio.run  # type: ignore[assignment]
        results = runner(run(url, args.calls, args.rounds))
    with open("/proc/loadavg") as f:
        print(f"{args.loop}, load average at the end: {' '.join(f.read().split()[:3])}")
    print(f"{'client':<40} {'CPU µs/exchange':>16} {'wall µs':>9}")
    for name, runs in results.items():
        print(f"{name:<40} {min(r[0] for r in runs):>16.0f} {min(r[1] for r in runs):>9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
