"""How far past its deadline a call to a frozen MCP upstream ends (issue 14: "within 5 %").

A frozen streamable-HTTP upstream on 127.0.0.1 answers the handshake and ``tools/list``, then never
answers ``tools/call`` — nor the ``notifications/cancelled`` toolbridge sends when the call's deadline
passes (in the 2025-11-25 era; in the 2026-07-28 era closing the request is the signal). Each call's
time is measured against ``limits.call_timeout``; the report gives the median and worst overshoot.

    uv run python bench/mcp_deadline.py [--deadline 1.0] [--calls 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Any

import anyio
import uvicorn

from _procs import free_port
from _uvicorn import config
from toolbridge import Hub, Limits, Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.errors import ToolbridgeError

RELEASE = anyio.Event()
LISTED = {"tools": [{"name": "hang", "inputSchema": {"type": "object"}}]}


def _answer(message: dict[str, Any]) -> dict[str, Any] | None:
    method = message.get("method")
    if method == "initialize":
        info = {"name": "frozen", "version": "1"}
        return {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": info}
    if method == "server/discover":
        return {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}}
    return LISTED if method == "tools/list" else None


async def frozen(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body) if scope["method"] == "POST" and body else {}
    if request.get("method") in ("tools/call", "notifications/cancelled"):
        await RELEASE.wait()  # frozen until the benchmark ends
    result = _answer(request)
    if result is None:
        status = 405 if scope["method"] != "POST" else 202
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    out = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result}).encode()
    headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"frozen-session")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


async def overshoots(url: str, protocol: str, deadline: float, calls: int) -> list[float]:
    hub = Hub(limits=Limits(call_timeout=deadline))
    hub.add_connector(McpConnector("frozen", HttpServer(url, protocol=protocol)))  # type: ignore[arg-type]
    found: list[float] = []
    async with hub:
        for _ in range(calls):
            started = time.perf_counter()
            with contextlib.suppress(ToolbridgeError):
                await hub.call(Principal.local(), "frozen.hang", {})
            found.append((time.perf_counter() - started) / deadline - 1)
    return found


async def main(deadline: float, calls: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = uvicorn.Server(config(frozen, port))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:  # noqa: ASYNC110  # uvicorn offers no event: bounded polling
                await anyio.sleep(0.01)
        try:
            for protocol in ("2025-11-25", "2026-07-28"):
                found = await overshoots(url, protocol, deadline, calls)
                print(
                    f"{protocol}: deadline {deadline:g} s, {calls} calls: overshoot median "
                    f"{statistics.median(found):+.1%}, worst {max(found):+.1%} (goal <= +5%)"
                )
        finally:
            RELEASE.set()
            server.should_exit = True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=1.0, help="limits.call_timeout, seconds")
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.deadline, args.calls)
