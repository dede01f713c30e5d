"""The admin UI's test kit: a hub with an operator, an agent and a tool whose description is markup,
served in-process over ASGI, and a browser-like client that signs in through the form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2

from toolbridge import Hub
from toolbridge.surfaces.app import create_app

BASE = "http://toolbridge.test"
HOSTILE = "<script>alert(1)</script>"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Served:
    hub: Hub
    http: httpx2.AsyncClient
    operator_key: str
    agent_key: str


def make_hub() -> Hub:
    hub = Hub(agents={"ops": ["*"], "writer": ["notes.*"]})

    @hub.tool(connector="notes", read_only=True, description=f"Count the words of a note. {HOSTILE}")
    def count(text: str) -> int:
        return len(text.split())

    @hub.tool(connector="notes")
    async def add(text: str) -> dict[str, str]:
        """Add a note."""
        return {"added": text}

    return hub


@asynccontextmanager
async def served(hub: Hub | None = None) -> AsyncIterator[Served]:
    hub = hub or make_hub()
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        operator, agent = await hub.agents.create("ops"), await hub.agents.create("writer")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE) as http:
            yield Served(hub, http, operator, agent)


def csrf_of(page: str) -> str:
    """The CSRF token of the page's first form."""
    match = _CSRF.search(page)
    assert match, f"no CSRF token in the page:\n{page[:2000]}"
    return match.group(1)


async def sign_in(http: httpx2.AsyncClient, key: str) -> httpx2.Response:
    form = await http.get("/admin/login")
    assert form.status_code == 200, form.text
    return await http.post("/admin/login", data={"csrf": csrf_of(form.text), "key": key})
