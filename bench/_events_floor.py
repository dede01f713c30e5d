"""The floor for ``bench/events.py``: a bare Starlette endpoint under uvicorn (same loop and HTTP parser as
``toolbridge serve``) that stores each POST body with one ``INSERT`` (its own transaction, through an
asyncpg pool, or aiosqlite) and answers a small JSON document. No verification, no deduplication, no
SQLAlchemy, no batching: what one durable row per request costs on this machine.

    python bench/_events_floor.py PORT DATABASE_URL
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_TABLE = "CREATE TABLE IF NOT EXISTS floor_events (id TEXT PRIMARY KEY, body TEXT NOT NULL)"


def app(url: str) -> Starlette:
    store: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if url.startswith("postgresql"):
            import asyncpg

            pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
            await pool.execute(_TABLE)

            async def insert(event_id: str, body: str) -> None:
                await pool.execute("INSERT INTO floor_events (id, body) VALUES ($1, $2)", event_id, body)

            store["insert"] = insert
            yield
            await pool.close()
        else:
            import aiosqlite

            async with aiosqlite.connect(url.split("///", 1)[1]) as db:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute(_TABLE)

                async def insert_sqlite(event_id: str, body: str) -> None:
                    await db.execute("INSERT INTO floor_events (id, body) VALUES (?, ?)", (event_id, body))
                    await db.commit()

                store["insert"] = insert_sqlite
                yield

    async def receive(request: Request) -> Response:
        body = await request.body()
        event_id = "evt_" + secrets.token_hex(12)
        await store["insert"](event_id, body.decode())
        return Response(json.dumps({"id": event_id, "duplicate": False}), media_type="application/json")

    return Starlette(routes=[Route("/hooks/{source}", receive, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    port, url = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(app(url), host="127.0.0.1", port=port, log_level="warning", access_log=False)
