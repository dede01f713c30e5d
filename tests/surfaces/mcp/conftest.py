"""A hub with a few demo tools, served by an McpSurface in-process over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from toolbridge import Hub, Limits, Principal
from toolbridge.surfaces.mcp import McpSurface

BASE = "http://127.0.0.1"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
}


def make_hub() -> Hub:
    hub = Hub(limits=Limits(max_result_bytes=2_000))

    @hub.tool(connector="demo", read_only=True)
    async def echo(text: str) -> str:
        """Say the text back."""
        return text

    @hub.tool(connector="demo", title="Add numbers")
    def add(a: int, b: int) -> dict[str, int]:
        """Add two numbers."""
        return {"sum": a + b}

    @hub.tool(connector="demo", read_only=True)
    async def big(size: int) -> str:
        """A long text."""
        return "x" * size

    @hub.tool(connector="demo", read_only=True)
    async def fail(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(reason)

    @hub.tool(connector="admin", destructive=True)
    async def wipe() -> str:
        """Wipe everything."""
        return "wiped"

    return hub


@dataclass
class Served:
    """A running hub and surface, with an HTTP client and keys for two agents."""

    hub: Hub
    surface: McpSurface
    http: httpx2.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, agent: str | None = "alice", **extra: str) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if agent is not None:
            headers["authorization"] = f"Bearer {self.keys[agent]}"
        return {**headers, **{k.replace("_", "-"): v for k, v in extra.items()}}

    async def post(self, body: Any, *, agent: str | None = "alice", **extra: str) -> httpx2.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post("/mcp", content=content, headers=self.headers(agent, **extra))

    async def modern(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        agent: str | None = "alice",
        **extra: str,
    ) -> httpx2.Response:
        """One stateless-era (2026-07-28) request, with its envelope and routing headers."""
        meta = {**ENVELOPE, **(params or {}).get("_meta", {})}  # the caller's own _meta keys kept
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": meta}}
        routing = {"mcp_protocol_version": MODERN, "mcp_method": method}
        if method == "tools/call" and params is not None:
            routing["mcp_name"] = params["name"]
        return await self.post(body, agent=agent, **{**routing, **extra})

    async def initialize(self, agent: str | None = "alice") -> str:
        """Open a 2025-11-25 session; return its id."""
        params = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "tests", "version": "1"},
        }
        response = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, agent=agent
        )
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        done = await self.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            agent=agent,
            mcp_session_id=session,
            mcp_protocol_version=LEGACY,
        )
        assert done.status_code == 202
        return session

    async def legacy(
        self,
        session: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        agent: str | None = "alice",
    ) -> httpx2.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 9, "method": method}
        if params is not None:
            body["params"] = dict(params)
        return await self.post(body, agent=agent, mcp_session_id=session, mcp_protocol_version=LEGACY)


@asynccontextmanager
async def serve(hub: Hub, **options: Any) -> AsyncIterator[Served]:
    async with hub, McpSurface(hub, **options) as surface:
        transport = httpx2.ASGITransport(app=surface.asgi_app)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE) as http:
            served = Served(hub, surface, http)
            served.keys["alice"] = await hub.agents.create("alice", scopes=["*"])
            served.keys["reader"] = await hub.agents.create("reader", scopes=["demo.*:read"])
            yield served


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serve(make_hub()) as served:
        yield served


@pytest.fixture
def anonymous() -> Principal:
    return Principal.agent("anonymous", ["demo.*:read"])
