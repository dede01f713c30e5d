"""Leases with fencing numbers, checked inside the write transaction (see ``_tx``).

One row per (workspace, path) keeps the path's fencing number for ever: a release clears the holder and
token but keeps the number, so the next lease on the path always gets a higher one. Tokens are stored as
SHA-256 digests; the plaintext goes only to the holder.

The write check, for a write to ``path`` carrying ``token`` (or none):

* an unexpired lease held by someone else, or held without the token being presented → **423 Locked**
  naming the holder (never the token);
* a token that is not the path's current unexpired lease (it lapsed, was released or replaced) →
  **409 LeaseLost**: the holder must acquire again and re-read before writing;
* otherwise the write is accepted with the lease's fencing number, and the file remembers the highest
  fencing number that ever wrote it; a lower one is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from toolbridge.errors import BadRequest, LeaseLost, Locked
from toolbridge.workspace._model import Lease
from toolbridge.workspace._tables import ws_leases
from toolbridge.workspace._tx import Tx

__all__ = ["acquire", "check_write", "heartbeat", "release", "sweep"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _matches(stored: str | None, token: str | None) -> bool:
    return stored is not None and token is not None and hmac.compare_digest(stored, _digest(token))


async def _row(tx: Tx, path: str) -> sa.Row[tuple[object, ...]] | None:
    return (
        await tx.conn.execute(
            sa.select(ws_leases).where(ws_leases.c.workspace_id == tx.workspace, ws_leases.c.path == path)
        )
    ).first()


def _locked(path: str, holder: str, expires_at: float, now: float) -> Locked:
    return Locked(
        f"{path!r} is leased by {holder} for another {expires_at - now:.0f} s",
        holder=holder,
        expires_in=max(0.0, expires_at - now),
        hint="wait for the lease to end (watch workspace.changes for lease.released/expired), "
        "or work on another path",
    )


def _lost(path: str) -> LeaseLost:
    return LeaseLost(
        f"the lease token presented for {path!r} is not the current lease (it expired, was released "
        "or another holder took over)",
        hint="acquire the lease again with workspace.lock, re-read the file, then write",
    )


def check_ttl(ttl: float | None, default: float, maximum: float) -> float:
    value = default if ttl is None else float(ttl)
    if not 1.0 <= value <= maximum:
        raise BadRequest(f"lease ttl {value:g} s is out of range", hint=f"use 1 to {maximum:g} seconds")
    return value


async def acquire(tx: Tx, path: str, ttl: float) -> Lease:
    row = await _row(tx, path)
    if row is not None and row.token_hash is not None:
        if row.expires_at > tx.now:
            raise _locked(path, str(row.holder), float(row.expires_at), tx.now)
        await tx.emit("lease.expired", path, {"holder": row.holder, "fence": row.fence})
    fence = (int(row.fence) if row is not None else 0) + 1
    token = "lt_" + secrets.token_urlsafe(24)
    values = {
        "fence": fence,
        "token_hash": _digest(token),
        "holder": tx.principal.id,
        "expires_at": tx.now + ttl,
    }
    if row is None:
        await tx.conn.execute(ws_leases.insert().values(workspace_id=tx.workspace, path=path, **values))
    else:
        await tx.conn.execute(_update(tx, path).values(**values))
    await tx.emit("lease.acquired", path, {"fence": fence, "ttl": ttl})
    return Lease(path, token, fence, tx.principal.id, tx.now + ttl, ttl)


def _update(tx: Tx, path: str) -> sa.Update:
    return ws_leases.update().where(ws_leases.c.workspace_id == tx.workspace, ws_leases.c.path == path)


async def _current(tx: Tx, path: str, token: str) -> sa.Row[tuple[object, ...]]:
    """The lease row ``token`` holds and may use now, or the right error."""
    row = await _row(tx, path)
    if row is None or row.token_hash is None:
        raise _lost(path)
    active = float(row.expires_at) > tx.now
    if not _matches(row.token_hash, token):
        if active:
            raise _locked(path, str(row.holder), float(row.expires_at), tx.now)
        raise _lost(path)
    if row.holder != tx.principal.id:
        if active:
            raise _locked(path, str(row.holder), float(row.expires_at), tx.now)
        raise _lost(path)
    if not active:
        raise _lost(path)
    return row


async def heartbeat(tx: Tx, path: str, token: str, ttl: float) -> Lease:
    row = await _current(tx, path, token)
    await tx.conn.execute(_update(tx, path).values(expires_at=tx.now + ttl))
    return Lease(path, token, int(row.fence), tx.principal.id, tx.now + ttl, ttl)


async def release(tx: Tx, path: str, token: str) -> None:
    row = await _row(tx, path)
    if row is None or not _matches(row.token_hash, token) or row.holder != tx.principal.id:
        if row is not None and row.token_hash is not None and float(row.expires_at) > tx.now:
            raise _locked(path, str(row.holder), float(row.expires_at), tx.now)
        raise _lost(path)
    await tx.conn.execute(_update(tx, path).values(token_hash=None, holder=None, expires_at=None))
    await tx.emit("lease.released", path, {"fence": row.fence})


async def check_write(tx: Tx, path: str, token: str | None) -> int:
    """Enforce the lease rule for a write to ``path``; return the fencing number it writes under."""
    if token is not None:
        return int((await _current(tx, path, token)).fence)
    row = await _row(tx, path)
    if row is not None and row.token_hash is not None and float(row.expires_at) > tx.now:
        raise _locked(path, str(row.holder), float(row.expires_at), tx.now)
    return int(row.fence) if row is not None else 0


async def sweep(tx: Tx) -> int:
    """Clear leases that have expired, recording ``lease.expired`` for each; return how many."""
    rows = (
        await tx.conn.execute(
            sa.select(ws_leases.c.path, ws_leases.c.holder, ws_leases.c.fence).where(
                ws_leases.c.workspace_id == tx.workspace,
                ws_leases.c.token_hash.is_not(None),
                ws_leases.c.expires_at <= tx.now,
            )
        )
    ).all()
    for row in rows:
        await tx.conn.execute(_update(tx, row.path).values(token_hash=None, holder=None, expires_at=None))
        await tx.emit("lease.expired", row.path, {"holder": row.holder, "fence": row.fence})
    return len(rows)
