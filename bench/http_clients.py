"""The HTTP clients the OpenAPI connector could send with, compared by CPU per request (docs/dependencies.md).

``GET /pets/1`` on bench/serve_openapi.py's upstream (its own process), one keep-alive connection, the body
read in full, sequentially: ``httpx2.AsyncClient.send``, httpx2's transport alone, ``httpcore2``'s pool
alone, aiohttp's ``ClientSession``, and a request hand-written on asyncio streams (the floor). CPU time of
this process per request (best of 3 runs of ``--calls``), on asyncio and on uvloop.

Usage: ``uv run python bench/http_clients.py [--calls 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import httpcore2
import httpx2
import uvloop

from _procs import free_port, running

SERVE = Path(__file__).parent / "serve_openapi.py"
Call = Callable[[], Awaitable[None]]
Client = Callable[[str, int], AbstractAsyncContextManager[Call]]


@asynccontextmanager
async def httpx2_client(url: str, port: int) -> AsyncIterator[Call]:
    async with httpx2.AsyncClient(trust_env=False) as client:

        async def call() -> None:
            request = client.build_request("GET", url, headers={"accept": "application/json"})
            response = await client.send(request, stream=True)
            await response.aread()
            await response.aclose()

        yield call


@asynccontextmanager
async def httpx2_transport(url: str, port: int) -> AsyncIterator[Call]:
    async with httpx2.AsyncHTTPTransport() as transport:

        async def call() -> None:
            request = httpx2.Request("GET", url, headers={"accept": "application/json"})
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()

        yield call


@asynccontextmanager
async def httpcore2_pool(url: str, port: int) -> AsyncIterator[Call]:
    target = httpcore2.URL(scheme=b"http", host=b"127.0.0.1", port=port, target=b"/pets/1")
    headers = [(b"Host", f"127.0.0.1:{port}".encode()), (b"Accept", b"application/json")]
    async with httpcore2.AsyncConnectionPool() as pool:

        async def call() -> None:
            response = await pool.handle_async_request(httpcore2.Request(b"GET", target, headers=headers))
            try:
                async for _chunk in response.stream:  # type: ignore[union-attr]
                    pass
            finally:
                await response.aclose()

        yield call


@asynccontextmanager
async def aiohttp_session(url: str, port: int) -> AsyncIterator[Call]:
    async with aiohttp.ClientSession() as session:

        async def call() -> None:
            async with session.get(url, headers={"accept": "application/json"}) as response:
                await response.read()

        yield call


@asynccontextmanager
async def raw_streams(url: str, port: int) -> AsyncIterator[Call]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /pets/1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n".encode()

    async def call() -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().index(b"content-length:")
        await reader.readexactly(int(head[at + 15 : head.index(b"\r\n", at)]))

    try:
        yield call
    finally:
        writer.close()


@asynccontextmanager
async def fast_path(url: str, port: int) -> AsyncIterator[Call]:
    from toolbridge.connectors._fastpath import FastTransport

    target = httpx2.URL(url)
    headers = [("host", f"127.0.0.1:{port}"), ("accept", "application/json")]
    transport = FastTransport()
    try:

        async def call() -> None:
            answer = await transport.open("GET", target, headers, b"")
            async for _ in answer.aiter_bytes():
                pass
            await answer.aclose()

        yield call
    finally:
        await transport.aclose()


CLIENTS: dict[str, Client] = {
    "hand-written on asyncio streams (floor)": raw_streams,
    "toolbridge's HTTP/1.1 (MCP fast path)": fast_path,
    "aiohttp ClientSession": aiohttp_session,
    "httpcore2 AsyncConnectionPool": httpcore2_pool,
    "httpx2 AsyncHTTPTransport": httpx2_transport,
    "httpx2 AsyncClient.send": httpx2_client,
}


async def measure(client: Client, port: int, calls: int) -> tuple[float, float]:
    """Best of 3 runs: CPU µs and wall µs per request."""
    async with client(f"http://127.0.0.1:{port}/pets/1", port) as call:
        for _ in range(min(300, calls)):
            await call()
        runs = []
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                await call()
            runs.append(((time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls))
    return min(r[0] for r in runs) * 1e6, min(r[1] for r in runs) * 1e6


async def all_clients(port: int, calls: int) -> dict[str, tuple[float, float]]:
    return {name: await measure(client, port, calls) for name, client in CLIENTS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="requests per run (default 2000)")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[0]}")
    port = free_port()
    argv = [sys.executable, str(SERVE), "upstream", str(port)]
    with tempfile.TemporaryDirectory() as logs, running("upstream", argv, port, Path(logs)):
        loops = {"asyncio": asyncio.run(all_clients(port, args.calls))}
        loops["uvloop"] = uvloop.run(all_clients(port, args.calls))
    print(f"{'client':<42} {'asyncio CPU':>11} {'uvloop CPU':>11} {'uvloop wall':>12}  (us per request)")
    for name in CLIENTS:
        a, u = loops["asyncio"][name], loops["uvloop"][name]
        print(f"{name:<42} {a[0]:>11.0f} {u[0]:>11.0f} {u[1]:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
