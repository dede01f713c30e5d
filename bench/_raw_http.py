"""A lean HTTP/1.1 load generator for the benchmarks: requests are serialized before the clock starts and
sent over keep-alive connections with asyncio streams, so the sender costs a few tens of µs of CPU per
request instead of the ~1 ms a full client (httpx2) spends. On a 2-core machine the sender shares the
cores with the server it measures; a cheap sender leaves them to the server.

Each connection sends one request and reads its answer before the next (no pipelining), like a webhook
provider does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

__all__ = ["request_bytes", "run_load"]


def request_bytes(method: str, path: str, port: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def run_load(
    port: int, requests: Sequence[bytes], senders: int, check: Callable[[int, bytes], None] | None = None
) -> tuple[float, list[float], float]:
    """Send ``requests`` over ``senders`` connections; (requests per second, latencies in s, this
    process's CPU seconds per request while sending)."""
    latencies: list[float] = []
    queue = iter(requests)

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in queue:
                started = time.perf_counter()
                writer.write(raw)
                status, body = await _answer(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise AssertionError(f"HTTP {status}: {body[:300]!r}")
                if check is not None:
                    check(status, body)
        finally:
            writer.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(requests) / elapsed, latencies, cpu / len(requests)
