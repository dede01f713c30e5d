"""File rows: reading them as :class:`Entry`, and the checks every write shares."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import BadRequest, Conflict, NotFound, PreconditionFailed, StorageQuotaExceeded
from toolbridge.workspace._blobs import BlobInfo
from toolbridge.workspace._model import Entry, Role, etag_of
from toolbridge.workspace._paths import ROOT
from toolbridge.workspace._tables import ws_files, ws_members, ws_versions
from toolbridge.workspace._tx import Tx

__all__ = [
    "LIVE",
    "charge_bytes",
    "check_metadata",
    "check_placement",
    "check_preconditions",
    "children",
    "copy_row",
    "entry_of",
    "escape_like",
    "file_missing",
    "live_row",
    "member_role",
    "new_id",
    "rows_under",
    "stat",
    "store_version",
    "trashed_under",
    "upsert_member",
]

LIVE = ""
"""``trash_key`` of a file that is not in the trash."""


def new_id() -> str:
    return secrets.token_hex(12)


def file_missing(path: str) -> NotFound:
    return NotFound(
        f"no file or folder at {path!r}", hint="list the folder with workspace.list to see what is there"
    )


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def entry_of(row: Any) -> Entry:
    meta: Mapping[str, str] = {str(k): str(v) for k, v in (row.meta or {}).items()}
    return Entry(
        path=row.path,
        kind=row.kind,
        id=row.id,
        version=int(row.version),
        size=int(row.size),
        sha256=row.sha256,
        content_type=row.content_type,
        metadata=meta,
        updated_at=float(row.updated_at),
        updated_by=row.updated_by,
        trashed=row.trash_key != LIVE,
    )


async def live_row(conn: AsyncConnection, workspace: str, path: str) -> Any:
    return (
        await conn.execute(
            sa.select(ws_files).where(
                ws_files.c.workspace_id == workspace, ws_files.c.path == path, ws_files.c.trash_key == LIVE
            )
        )
    ).first()


async def rows_under(
    conn: AsyncConnection, workspace: str, folder: str, *, trash_key: str = LIVE
) -> list[Any]:
    """Live rows strictly below ``folder`` (every depth)."""
    prefix = "/" if folder == ROOT else folder + "/"
    query = sa.select(ws_files).where(
        ws_files.c.workspace_id == workspace,
        ws_files.c.trash_key == trash_key,
        ws_files.c.path.like(escape_like(prefix) + "%", escape="\\"),
    )
    return list((await conn.execute(query.order_by(ws_files.c.path))).all())


async def has_children(conn: AsyncConnection, workspace: str, path: str) -> bool:
    query = (
        sa.select(ws_files.c.id)
        .where(
            ws_files.c.workspace_id == workspace,
            ws_files.c.trash_key == LIVE,
            ws_files.c.path.like(escape_like(path + "/") + "%", escape="\\"),
        )
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def insert_folder(tx: Tx, path: str, by: str) -> None:
    """A folder row at ``path`` (a folder then exists while it is empty)."""
    await tx.conn.execute(
        ws_files.insert().values(
            id=new_id(),
            workspace_id=tx.workspace,
            path=path,
            trash_key=LIVE,
            kind="folder",
            version=0,
            size=0,
            sha256="",
            content_type="",
            meta={},
            fence=0,
            updated_at=tx.now,
            updated_by=by,
        )
    )


async def keep_parent(tx: Tx, path: str, by: str) -> None:
    """After ``path`` left its folder (deleted, moved away): the folder stays, even if now empty."""
    parent = path.rsplit("/", 1)[0] or ROOT
    if parent == ROOT or await live_row(tx.conn, tx.workspace, parent) is not None:
        return
    if not await rows_under(tx.conn, tx.workspace, parent):
        await insert_folder(tx, parent, by)


async def check_placement(tx: Tx, path: str) -> None:
    """A file may not sit below a file, nor on top of a folder."""
    parts = path.strip("/").split("/")
    ancestors = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
    if ancestors:
        clash = (
            await tx.conn.execute(
                sa.select(ws_files.c.path).where(
                    ws_files.c.workspace_id == tx.workspace,
                    ws_files.c.trash_key == LIVE,
                    ws_files.c.kind == "file",
                    ws_files.c.path.in_(ancestors),
                )
            )
        ).first()
        if clash is not None:
            raise Conflict(
                f"{clash.path!r} is a file, so {path!r} cannot be created below it",
                hint="choose a path whose folders are not files",
            )
    if await has_children(tx.conn, tx.workspace, path):
        raise Conflict(f"{path!r} is a folder", hint="write to a path inside it, e.g. " + path + "/name")


def check_preconditions(path: str, row: Any, expected_version: int | None, if_match: str | None) -> None:
    current_version = int(row.version) if row is not None else 0
    current_etag = etag_of(row.sha256, current_version) if row is not None else None
    current: dict[str, object] = {"version": current_version, "etag": current_etag}
    if expected_version is not None and expected_version != current_version:
        state = f"is at version {current_version}" if row is not None else "does not exist (version 0)"
        raise PreconditionFailed(
            f"{path!r} {state}, not the expected version {expected_version}",
            current=current,
            hint="read the file again, merge your change into the current content, and write with "
            f"expected_version={current_version}",
        )
    if if_match is not None:
        if if_match.strip() == "*":
            ok = row is not None
        else:
            ok = current_etag is not None and if_match.strip() in {current_etag, current_etag.strip('"')}
        if not ok:
            raise PreconditionFailed(
                f"{path!r} has ETag {current_etag}, which does not match {if_match}"
                if current_etag is not None
                else f"{path!r} does not exist, so no ETag matches {if_match}",
                current=current,
                hint="read the file again to get its current ETag, then retry the write",
            )


def charge_bytes(tx: Tx, size: int) -> None:
    if tx.quota_bytes is not None and tx.used_bytes + size > tx.quota_bytes:
        raise StorageQuotaExceeded(
            f"workspace {tx.workspace!r} would hold {tx.used_bytes + size:,} bytes, over its quota of "
            f"{tx.quota_bytes:,} bytes",
            limit_name="workspace.quota_bytes",
            limit=tx.quota_bytes,
            used=tx.used_bytes,
            hint="every version counts, trashed files included, and deleting does not free space yet: ask "
            "an operator to raise quota_bytes for this workspace in toolbridge.yaml",
        )
    tx.used_bytes += size


async def upsert_member(conn: AsyncConnection, workspace: str, principal: str, role: Role) -> None:
    updated = await conn.execute(
        ws_members.update()
        .where(ws_members.c.workspace_id == workspace, ws_members.c.principal == principal)
        .values(role=int(role))
    )
    if updated.rowcount == 0:
        await conn.execute(
            ws_members.insert().values(workspace_id=workspace, principal=principal, role=int(role))
        )


async def member_role(tx: Tx, member: str) -> Role | None:
    row = (
        await tx.conn.execute(
            sa.select(ws_members.c.role).where(
                ws_members.c.workspace_id == tx.workspace, ws_members.c.principal == member
            )
        )
    ).first()
    return Role(row.role) if row is not None else None


async def stat(conn: AsyncConnection, workspace: str, path: str) -> Entry:
    row = await live_row(conn, workspace, path) if path != ROOT else None
    if row is not None:
        return entry_of(row)
    if path == ROOT or await rows_under(conn, workspace, path):
        return Entry(path, "folder")
    raise file_missing(path)


async def store_version(
    tx: Tx, path: str, row: Any, blob: BlobInfo, content_type: str, meta: dict[str, str], fence: int
) -> Entry:
    common = {
        "size": blob.size,
        "sha256": blob.sha256,
        "fence": fence,
        "updated_at": tx.now,
        "updated_by": tx.principal.id,
    }
    if row is None:
        file_id, version = new_id(), 1
        await tx.conn.execute(
            ws_files.insert().values(
                id=file_id,
                workspace_id=tx.workspace,
                path=path,
                trash_key=LIVE,
                kind="file",
                version=1,
                content_type=content_type or "application/octet-stream",
                meta=meta,
                **common,
            )
        )
    else:
        file_id, version = str(row.id), int(row.version) + 1
        values = {"version": version, **common}
        if content_type:
            values["content_type"] = content_type
        if meta:
            values["meta"] = {**(row.meta or {}), **meta}
        await tx.conn.execute(ws_files.update().where(ws_files.c.id == file_id).values(**values))
    await tx.conn.execute(
        ws_versions.insert().values(
            file_id=file_id,
            version=version,
            size=blob.size,
            sha256=blob.sha256,
            created_at=tx.now,
            created_by=tx.principal.id,
        )
    )
    return await stat(tx.conn, tx.workspace, path)


async def copy_row(tx: Tx, item: Any, new_path: str) -> None:
    row = item
    file_id = new_id()
    size = int(row.size)
    charge_bytes(tx, size)
    values = {c.name: getattr(row, c.name) for c in ws_files.columns}
    values.update(
        id=file_id,
        path=new_path,
        version=1 if row.kind == "file" else 0,
        fence=0,
        updated_at=tx.now,
        updated_by=tx.principal.id,
    )
    await tx.conn.execute(ws_files.insert().values(**values))
    if row.kind == "file":
        await tx.conn.execute(
            ws_versions.insert().values(
                file_id=file_id,
                version=1,
                size=size,
                sha256=row.sha256,
                created_at=tx.now,
                created_by=tx.principal.id,
            )
        )


async def trashed_under(
    conn: AsyncConnection, workspace: str, folder: str, *, include_self: bool = False
) -> Sequence[Any]:
    prefix = "/" if folder == ROOT else folder + "/"
    under = ws_files.c.path.like(escape_like(prefix) + "%", escape="\\")
    condition = sa.or_(under, ws_files.c.path == folder) if include_self else under
    query = sa.select(ws_files).where(
        ws_files.c.workspace_id == workspace, ws_files.c.trash_key != LIVE, condition
    )
    return (await conn.execute(query.order_by(ws_files.c.updated_at.desc(), ws_files.c.path))).all()


def children(folder: str, rows: Sequence[Any]) -> list[Entry]:
    prefix = "/" if folder == ROOT else folder + "/"
    files: dict[str, Entry] = {}
    folders: set[str] = set()
    for row in rows:
        rest = str(row.path)[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            folders.add(prefix + head)
        else:
            files[row.path] = entry_of(row)
    for name in folders:
        files.setdefault(name, Entry(name, "folder"))
    return [files[k] for k in sorted(files)]


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if len(meta) > 64 or any(len(k) > 128 or len(v) > 1024 for k, v in meta.items()):
        raise BadRequest(
            "metadata is too large", hint="use at most 64 keys, keys ≤ 128 and values ≤ 1024 characters"
        )
    return meta
