"""One write transaction on one workspace: lock first, then check access, then emit changes.

Every mutating operation starts by touching its workspace row. On PostgreSQL that takes the row lock; on
SQLite it takes the database's write lock before anything is read. Either way the writes to one workspace
are serialized, so the lease and fencing checks that follow read state nobody else can change before the
transaction commits — the check and the write are one atomic step.

A change is an event in the event log (source ``workspace``, type ``workspace.<kind>``, subject the path),
recorded in the same transaction on the workspace's stream ``workspace:<id>`` and numbered there by the
workspace's ``change_seq``: the numbers the change feed's readers page by.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import NotFound, PermissionDenied
from toolbridge.events._model import Event, NewEvent
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace._model import Role
from toolbridge.workspace._tables import ws_members, ws_workspaces

if TYPE_CHECKING:
    from toolbridge.events import EventLog

__all__ = ["Tx", "read_tx", "role_of", "stream_of", "write_tx", "workspace_missing"]


def stream_of(workspace: str) -> str:
    """The event log stream that holds ``workspace``'s change feed."""
    return f"workspace:{workspace}"


def workspace_missing(workspace: str) -> NotFound:
    """The one answer for a workspace that does not exist *or* that the caller may not see."""
    return NotFound(
        f"no workspace {workspace!r}",
        hint="list the workspaces you can use with workspace.list (path '/') or GET /v1/workspaces",
    )


@dataclass(slots=True)
class Tx:
    conn: AsyncConnection
    workspace: str
    principal: Principal
    role: Role
    now: float
    seq: int
    quota_bytes: int | None
    used_bytes: int
    events: EventLog
    """Where changes are recorded, in this transaction."""
    emitted: list[int] = field(default_factory=list)
    recorded: list[Event] = field(default_factory=list)

    async def emit(self, kind: str, path: str, detail: Mapping[str, Any] | None = None) -> int:
        self.seq += 1
        plain = json.loads(json.dumps(dict(detail or {})))
        payload = {"workspace": self.workspace, "seq": self.seq, "kind": kind, "path": path}
        payload.update(principal=self.principal.id, detail=plain)
        new = NewEvent(
            "workspace",
            f"workspace.{kind}",
            path,
            payload,
            stream=stream_of(self.workspace),
            stream_seq=self.seq,
        )
        self.recorded.append((await self.events.append_in(self.conn, new)).event)
        self.emitted.append(self.seq)
        return self.seq


async def role_of(conn: AsyncConnection, workspace: str, principal: Principal) -> Role | None:
    if principal.kind == "local":
        return Role.OWNER
    row = (
        await conn.execute(
            sa.select(ws_members.c.role).where(
                ws_members.c.workspace_id == workspace, ws_members.c.principal == principal.id
            )
        )
    ).first()
    return Role(row.role) if row is not None else None


def _require(role: Role | None, needed: Role, workspace: str, principal: Principal) -> Role:
    if role is None:
        raise workspace_missing(workspace)
    if role < needed:
        raise PermissionDenied(
            f"{principal.id} is a {role.label} of workspace {workspace!r}; this needs {needed.label}",
            missing_scope=f"workspace:{workspace}:{needed.label}",
            hint=f"ask an owner or admin of {workspace!r} to make you {needed.label}",
        )
    return role


@asynccontextmanager
async def write_tx(
    db: Database,
    workspace: str,
    principal: Principal,
    needed: Role,
    now: float,
    events: EventLog,
) -> AsyncIterator[Tx]:
    async with db.transaction() as conn:
        touched = await conn.execute(
            ws_workspaces.update()
            .where(ws_workspaces.c.id == workspace)
            .values(change_seq=ws_workspaces.c.change_seq)
        )
        role = await role_of(conn, workspace, principal)  # asked either way: same work for 404 and 404
        if touched.rowcount == 0:
            raise workspace_missing(workspace)
        row = (
            await conn.execute(
                sa.select(
                    ws_workspaces.c.change_seq, ws_workspaces.c.quota_bytes, ws_workspaces.c.used_bytes
                ).where(ws_workspaces.c.id == workspace)
            )
        ).one()
        role = _require(role, needed, workspace, principal)
        tx = Tx(
            conn,
            workspace,
            principal,
            role,
            now,
            int(row.change_seq),
            row.quota_bytes,
            int(row.used_bytes),
            events,
        )
        yield tx
        await conn.execute(
            ws_workspaces.update()
            .where(ws_workspaces.c.id == workspace)
            .values(change_seq=tx.seq, used_bytes=tx.used_bytes)
        )


@asynccontextmanager
async def read_tx(db: Database, workspace: str, principal: Principal) -> AsyncIterator[AsyncConnection]:
    async with db.transaction() as conn:
        exists = (
            await conn.execute(sa.select(ws_workspaces.c.id).where(ws_workspaces.c.id == workspace))
        ).first()
        role = await role_of(conn, workspace, principal)  # asked either way: same work for 404 and 404
        if exists is None:
            raise workspace_missing(workspace)
        _require(role, Role.VIEWER, workspace, principal)
        yield conn
