"""The workspace service: files, versions, leases, members, quotas and the change feed.

The change feed is the workspace's stream in the event log (see ``_tx``): one record of each change, read
by ``workspace.changes`` (MCP, REST ``GET /v1/workspaces/<ws>/changes``, the CLI) and by event
subscriptions alike.

Every operation takes the calling :class:`~toolbridge.policy.Principal`. A workspace the principal is
not a member of answers exactly like one that does not exist (404). Writes run in one transaction per
workspace (see ``_tx``) in which the lease rule is checked (see ``_leases``), the version is added, the
quota charged and the change recorded — all or nothing. File contents go to the :class:`BlobStore` first:
blobs are content-addressed, so one written by a transaction that then fails is harmless.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import sqlalchemy as sa

from toolbridge.errors import BadRequest, Conflict, InvalidArguments, NotFound, QuotaExceeded
from toolbridge.events import Event, EventLog
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace import _leases
from toolbridge.workspace._blobs import BlobInfo, BlobStore
from toolbridge.workspace._files import (
    LIVE,
    charge_bytes,
    check_metadata,
    check_placement,
    check_preconditions,
    children,
    copy_row,
    entry_of,
    escape_like,
    file_missing,
    insert_folder,
    keep_parent,
    live_row,
    member_role,
    new_id,
    rows_under,
    stat,
    store_version,
    trashed_under,
    upsert_member,
)
from toolbridge.workspace._model import Change, ChangePage, Entry, Lease, Member, Role, Version, WorkspaceInfo
from toolbridge.workspace._paths import ROOT, normalize_path, split_name
from toolbridge.workspace._tables import (
    ws_credits,
    ws_files,
    ws_members,
    ws_versions,
    ws_workspaces,
)
from toolbridge.workspace._tx import Tx, read_tx, role_of, stream_of, write_tx

__all__ = ["Workspaces"]

Clock = Callable[[], float]
MIB = 1 << 20


class Workspaces:
    """Shared files for agents and people. Create one per hub; it holds no connections of its own."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        clock: Clock = time.time,
        default_ttl: float = 120.0,
        max_ttl: float = 3600.0,
        credits_per_agent: int | None = None,
        poll_interval: float = 0.5,
        events: EventLog | None = None,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.clock = clock
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.credits_per_agent = credits_per_agent
        self._poll = poll_interval
        self._changed = anyio.Event()
        self.events = events if events is not None else EventLog(database, clock=clock)
        """Where changes are recorded: the hub's event log, when it has one (subscriptions see them)."""

    # -- workspaces and members -------------------------------------------------------------------

    async def ensure(
        self,
        workspace: str,
        *,
        name: str | None = None,
        quota_bytes: int | None = None,
        members: Mapping[str, Role] | None = None,
    ) -> None:
        """Create ``workspace`` if missing; make its quota and members agree (operator use, from config)."""
        async with self.database.transaction() as conn:
            found = (
                await conn.execute(sa.select(ws_workspaces.c.id).where(ws_workspaces.c.id == workspace))
            ).first()
            if found is None:
                await conn.execute(
                    ws_workspaces.insert().values(
                        id=workspace,
                        name=name or workspace,
                        quota_bytes=quota_bytes,
                        used_bytes=0,
                        change_seq=0,
                        created_at=self.clock(),
                    )
                )
            else:
                await conn.execute(
                    ws_workspaces.update()
                    .where(ws_workspaces.c.id == workspace)
                    .values(quota_bytes=quota_bytes)
                )
            for principal, role in (members or {}).items():
                await upsert_member(conn, workspace, principal, role)

    async def create(
        self, principal: Principal, name: str, *, quota_bytes: int | None = None
    ) -> WorkspaceInfo:
        """A new workspace owned by ``principal`` (its id is generated: names need not be unique)."""
        workspace = "ws_" + secrets.token_hex(8)
        await self.ensure(workspace, name=name, quota_bytes=quota_bytes, members={principal.id: Role.OWNER})
        return await self.info(principal, workspace)

    async def info(self, principal: Principal, workspace: str) -> WorkspaceInfo:
        async with read_tx(self.database, workspace, principal) as conn:
            row = (await conn.execute(sa.select(ws_workspaces).where(ws_workspaces.c.id == workspace))).one()
            role = await role_of(conn, workspace, principal)
        assert role is not None
        return WorkspaceInfo(row.id, row.name, role, row.quota_bytes, int(row.used_bytes))

    async def workspaces(self, principal: Principal) -> list[WorkspaceInfo]:
        query = (
            sa.select(ws_workspaces, ws_members.c.role)
            .join(ws_members, ws_members.c.workspace_id == ws_workspaces.c.id)
            .where(ws_members.c.principal == principal.id)
        )
        if principal.kind == "local":
            query = sa.select(ws_workspaces, sa.literal(int(Role.OWNER)).label("role"))
        async with self.database.transaction() as conn:
            rows = (await conn.execute(query.order_by(ws_workspaces.c.id))).all()
        return [WorkspaceInfo(r.id, r.name, Role(r.role), r.quota_bytes, int(r.used_bytes)) for r in rows]

    async def members(self, principal: Principal, workspace: str) -> list[Member]:
        async with read_tx(self.database, workspace, principal) as conn:
            rows = (
                await conn.execute(
                    sa.select(ws_members)
                    .where(ws_members.c.workspace_id == workspace)
                    .order_by(ws_members.c.principal)
                )
            ).all()
        return [Member(r.principal, Role(r.role)) for r in rows]

    async def set_member(self, principal: Principal, workspace: str, member: str, role: Role | None) -> None:
        """Add, change or (``role=None``) remove a member. Admins manage members; only owners make owners."""
        async with self._write(workspace, principal, Role.ADMIN) as tx:
            if (role == Role.OWNER or await member_role(tx, member) == Role.OWNER) and tx.role < Role.OWNER:
                raise Conflict("only an owner may add, change or remove an owner", hint="ask an owner")
            if role is None:
                await tx.conn.execute(
                    ws_members.delete().where(
                        ws_members.c.workspace_id == workspace, ws_members.c.principal == member
                    )
                )
            else:
                await upsert_member(tx.conn, workspace, member, role)
            await tx.emit("member.changed", ROOT, {"member": member, "role": role.label if role else None})

    # -- reading ----------------------------------------------------------------------------------

    async def stat(self, principal: Principal, workspace: str, path: str) -> Entry:
        path = normalize_path(path, allow_root=True)
        await self._charge(principal, 1)
        async with read_tx(self.database, workspace, principal) as conn:
            return await stat(conn, workspace, path)

    async def read(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        *,
        version: int | None = None,
        start: int = 0,
        end: int | None = None,
    ) -> tuple[Entry, bytes]:
        entry = await self.locate(principal, workspace, path, version=version)
        await self._charge(principal, 1 + entry.size // MIB)
        return entry, await self.blobs.read(entry.sha256, start, end)

    async def locate(
        self, principal: Principal, workspace: str, path: str, *, version: int | None = None
    ) -> Entry:
        """The file's entry (or that of one of its versions) — to stream its blob yourself."""
        path = normalize_path(path)
        async with read_tx(self.database, workspace, principal) as conn:
            row = await live_row(conn, workspace, path)
            if row is None or row.kind != "file":
                raise file_missing(path)
            entry = entry_of(row)
            if version is None or version == entry.version:
                return entry
            old = (
                await conn.execute(
                    sa.select(ws_versions).where(
                        ws_versions.c.file_id == row.id, ws_versions.c.version == version
                    )
                )
            ).first()
        if old is None:
            raise NotFound(f"{path!r} has no version {version}", hint="list them with workspace.versions")
        return Entry(
            path,
            "file",
            row.id,
            version,
            int(old.size),
            old.sha256,
            entry.content_type,
            entry.metadata,
            float(old.created_at),
            old.created_by,
        )

    async def list_folder(
        self, principal: Principal, workspace: str, path: str = ROOT, *, trashed: bool = False
    ) -> list[Entry]:
        """The direct children of folder ``path`` (or, with ``trashed``, everything in the trash below it)."""
        folder = normalize_path(path, allow_root=True)
        await self._charge(principal, 1)
        async with read_tx(self.database, workspace, principal) as conn:
            if trashed:
                rows = await trashed_under(conn, workspace, folder)
                return [entry_of(r) for r in rows]
            rows = await rows_under(conn, workspace, folder)
            if not rows and folder != ROOT:
                own = await live_row(conn, workspace, folder)
                if own is None or own.kind != "folder":
                    raise file_missing(folder)
        return children(folder, rows)

    async def versions(self, principal: Principal, workspace: str, path: str) -> list[Version]:
        path = normalize_path(path)
        await self._charge(principal, 1)
        async with read_tx(self.database, workspace, principal) as conn:
            row = await live_row(conn, workspace, path)
            if row is None or row.kind != "file":
                raise file_missing(path)
            rows = (
                await conn.execute(
                    sa.select(ws_versions)
                    .where(ws_versions.c.file_id == row.id)
                    .order_by(ws_versions.c.version.desc())
                )
            ).all()
        return [
            Version(int(r.version), int(r.size), r.sha256, float(r.created_at), r.created_by) for r in rows
        ]

    async def search(
        self,
        principal: Principal,
        workspace: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int = 100,
    ) -> list[Entry]:
        """Live files whose name contains ``name`` (any case) and whose metadata has every pair given."""
        await self._charge(principal, 1)
        query = sa.select(ws_files).where(ws_files.c.workspace_id == workspace, ws_files.c.trash_key == LIVE)
        if name:
            query = query.where(
                sa.func.lower(ws_files.c.path).like("%" + escape_like(name.lower()) + "%", escape="\\")
            )
        found: list[Entry] = []
        async with read_tx(self.database, workspace, principal) as conn:
            for row in (await conn.execute(query.order_by(ws_files.c.path))).all():
                entry = entry_of(row)
                if name and name.lower() not in split_name(entry.path).lower():
                    continue
                if all(entry.metadata.get(k) == v for k, v in (metadata or {}).items()):
                    found.append(entry)
                if len(found) >= limit:
                    break
        return found

    # -- writing ----------------------------------------------------------------------------------

    async def write(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        data: bytes,
        *,
        content_type: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_version: int | None = None,
        if_match: str | None = None,
        lease: str | None = None,
    ) -> Entry:
        """Create or overwrite a file (a new version); small contents — large ones go via :meth:`commit`."""
        path = normalize_path(path)
        await self._charge(principal, 1 + len(data) // MIB)
        blob = await self.blobs.put_bytes(data)
        return await self._commit(
            principal,
            workspace,
            path,
            blob,
            content_type,
            metadata,
            expected_version,
            if_match,
            lease,
            "write",
        )

    async def check_upload(
        self, principal: Principal, workspace: str, path: str, size: int, lease: str | None
    ) -> None:
        """Refuse early what :meth:`commit` would refuse: no access, someone else's lease, no room."""
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            await _leases.check_write(tx, path, lease)
            charge_bytes(tx, size)
            tx.used_bytes -= size

    async def commit(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        file: Path,
        blob: BlobInfo,
        *,
        content_type: str = "",
        metadata: Mapping[str, str] | None = None,
        lease: str | None = None,
        expected_version: int | None = None,
        if_match: str | None = None,
        source: str = "upload",
    ) -> Entry:
        """Make the finished temporary ``file`` (digest ``blob``) the new version of ``path``.

        The lease and quota are checked before the bytes are moved into the blob store, and again in the
        transaction that records the version (a lease can lapse in between).
        """
        await self._charge(principal, 1 + blob.size // MIB)
        await self.check_upload(principal, workspace, path, blob.size, lease)
        await self.blobs.put_file(file, blob)
        return await self._commit(
            principal,
            workspace,
            normalize_path(path),
            blob,
            content_type,
            metadata,
            expected_version,
            if_match,
            lease,
            source,
        )

    async def _commit(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        blob: BlobInfo,
        content_type: str,
        metadata: Mapping[str, str] | None,
        expected_version: int | None,
        if_match: str | None,
        lease: str | None,
        source: str,
    ) -> Entry:
        meta = check_metadata(metadata)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            fence = await _leases.check_write(tx, path, lease)
            row = await live_row(tx.conn, workspace, path)
            check_preconditions(path, row, expected_version, if_match)
            if row is not None and row.kind == "folder":
                raise Conflict(f"{path!r} is a folder", hint="write to a path inside it")
            if row is not None and int(row.fence) > fence:
                raise _leases._lost(path)
            if row is None:
                await check_placement(tx, path)
            charge_bytes(tx, blob.size)
            entry = await store_version(tx, path, row, blob, content_type, meta, fence)
            kind = "file.created" if row is None else "file.updated"
            await tx.emit(
                kind, path, {"version": entry.version, "size": blob.size, "fence": fence, "via": source}
            )
            if source in ("upload", "put"):
                await tx.emit("upload.completed", path, {"version": entry.version, "size": blob.size})
        return entry

    async def mkdir(self, principal: Principal, workspace: str, path: str) -> Entry:
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            row = await live_row(tx.conn, workspace, path)
            if row is not None:
                if row.kind == "folder":
                    return entry_of(row)
                raise Conflict(f"{path!r} is a file", hint="choose another folder name")
            await check_placement(tx, path)
            await insert_folder(tx, path, principal.id)
            await tx.emit("folder.created", path)
            return await stat(tx.conn, workspace, path)

    async def set_metadata(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        metadata: Mapping[str, str],
        *,
        lease: str | None = None,
    ) -> Entry:
        """Merge ``metadata`` into the file's (a value of "" removes the key); no new version."""
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            await _leases.check_write(tx, path, lease)
            row = await live_row(tx.conn, workspace, path)
            if row is None:
                raise file_missing(path)
            merged = {**(row.meta or {}), **dict(metadata)}
            meta = check_metadata({k: v for k, v in merged.items() if v != ""})
            await tx.conn.execute(ws_files.update().where(ws_files.c.id == row.id).values(meta=meta))
            await tx.emit("file.updated", path, {"metadata": sorted(metadata)})
            return await stat(tx.conn, workspace, path)

    async def move(
        self,
        principal: Principal,
        workspace: str,
        source: str,
        target: str,
        *,
        lease: str | None = None,
        copy: bool = False,
    ) -> Entry:
        """Move (or copy) a file or a folder with everything in it. The target must not exist."""
        src, dst = normalize_path(source), normalize_path(target)
        if dst == src or dst.startswith(src + "/"):
            raise BadRequest(f"cannot move {src!r} into itself ({dst!r})", hint="choose a target outside it")
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            row = await live_row(tx.conn, workspace, src)
            below = await rows_under(tx.conn, workspace, src)
            if row is None and not below:
                raise file_missing(src)
            if await live_row(tx.conn, workspace, dst) is not None or await rows_under(
                tx.conn, workspace, dst
            ):
                raise Conflict(f"{dst!r} already exists", hint="delete it first or choose another target")
            await check_placement(tx, dst)
            moving = ([row] if row is not None else []) + below
            for item in moving:
                new_path = dst + item.path[len(src) :]
                await _leases.check_write(tx, new_path, None)
                if copy:
                    await copy_row(tx, item, new_path)
                else:
                    await _leases.check_write(tx, item.path, lease if item.path == src else None)
                    await tx.conn.execute(
                        ws_files.update()
                        .where(ws_files.c.id == item.id)
                        .values(path=new_path, fence=0, updated_at=tx.now, updated_by=principal.id)
                    )
            kind = "file.copied" if copy else "file.moved"
            if not copy:
                await keep_parent(tx, src, principal.id)
            await tx.emit(kind, dst, {"from": src, "count": len(moving)})
            return await stat(tx.conn, workspace, dst)

    async def delete(
        self,
        principal: Principal,
        workspace: str,
        path: str,
        *,
        lease: str | None = None,
        expected_version: int | None = None,
    ) -> Entry:
        """Move a file or folder (with its contents) to the trash; :meth:`restore` brings it back."""
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            row = await live_row(tx.conn, workspace, path)
            below = await rows_under(tx.conn, workspace, path)
            if row is None and not below:
                raise file_missing(path)
            check_preconditions(path, row, expected_version, None) if row is not None else None
            batch = new_id()
            for item in ([row] if row is not None else []) + below:
                await _leases.check_write(tx, item.path, lease if item.path == path else None)
                await tx.conn.execute(
                    ws_files.update()
                    .where(ws_files.c.id == item.id)
                    .values(trash_key=batch, updated_at=tx.now, updated_by=principal.id)
                )
            await keep_parent(tx, path, principal.id)
            await tx.emit("file.deleted", path, {"trash_id": batch, "count": len(below) + (row is not None)})
        return Entry(path, row.kind if row is not None else "folder", batch, trashed=True, updated_at=tx.now)

    async def restore(
        self, principal: Principal, workspace: str, path: str, *, trash_id: str | None = None
    ) -> Entry:
        """Bring back the most recently deleted file or folder at ``path`` (or the deletion ``trash_id``)."""
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            rows = await trashed_under(tx.conn, workspace, path, include_self=True)
            if trash_id is None and rows:
                trash_id = max(rows, key=lambda r: float(r.updated_at)).trash_key
            batch = [r for r in rows if r.trash_key == trash_id]
            if not batch:
                raise NotFound(
                    f"nothing deleted at {path!r} is in the trash", hint="list it with trashed=true"
                )
            for item in batch:
                if await live_row(tx.conn, workspace, item.path) is not None:
                    raise Conflict(f"{item.path!r} exists again", hint="move it away, then restore")
                await _leases.check_write(tx, item.path, None)
                await tx.conn.execute(
                    ws_files.update()
                    .where(ws_files.c.id == item.id)
                    .values(trash_key=LIVE, updated_at=tx.now, updated_by=principal.id)
                )
            await tx.emit("file.restored", path, {"trash_id": trash_id, "count": len(batch)})
            return await stat(tx.conn, workspace, path)

    async def restore_version(
        self, principal: Principal, workspace: str, path: str, version: int, *, lease: str | None = None
    ) -> Entry:
        """Make an old version current again (as a new version: history is never rewritten)."""
        old = await self.locate(principal, workspace, path, version=version)
        return await self._commit(
            principal,
            workspace,
            old.path,
            BlobInfo(old.sha256, old.size),
            old.content_type,
            None,
            None,
            None,
            lease,
            "restore",
        )

    # -- leases -----------------------------------------------------------------------------------

    async def lock(
        self, principal: Principal, workspace: str, path: str, *, ttl: float | None = None
    ) -> Lease:
        path = normalize_path(path)
        seconds = _leases.check_ttl(ttl, self.default_ttl, self.max_ttl)
        await self._charge(principal, 1)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            return await _leases.acquire(tx, path, seconds)

    async def heartbeat(
        self, principal: Principal, workspace: str, path: str, token: str, *, ttl: float | None = None
    ) -> Lease:
        path = normalize_path(path)
        seconds = _leases.check_ttl(ttl, self.default_ttl, self.max_ttl)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            return await _leases.heartbeat(tx, path, token, seconds)

    async def unlock(self, principal: Principal, workspace: str, path: str, token: str) -> None:
        path = normalize_path(path)
        async with self._write(workspace, principal, Role.EDITOR) as tx:
            await _leases.release(tx, path, token)

    # -- the change feed --------------------------------------------------------------------------

    async def changes(
        self, principal: Principal, workspace: str, *, cursor: int = 0, limit: int = 100, wait: float = 0.0
    ) -> ChangePage:
        """Changes after ``cursor``, oldest first; with ``wait`` > 0, wait up to that long for one."""
        limit = max(1, min(limit, 1000))
        page = await self._read_changes(principal, workspace, cursor, limit, check=True)
        if page.changes or wait <= 0:
            return page
        with anyio.move_on_after(min(wait, 60.0)):
            while not page.changes:
                with anyio.move_on_after(self._poll):
                    await self._changed.wait()
                page = await self._read_changes(principal, workspace, cursor, limit)
        return page

    async def sweep(self, principal: Principal, workspace: str) -> int:
        """Record ``lease.expired`` for every lease past its end (the feed's readers call this)."""
        async with self._write(workspace, principal, Role.VIEWER) as tx:
            return await _leases.sweep(tx)

    async def _read_changes(
        self, principal: Principal, workspace: str, cursor: int, limit: int, *, check: bool = False
    ) -> ChangePage:
        """``check``: refuse a cursor past the newest change, which this feed never gave (one from another
        list): answered as it stood, it read as "nothing new" for ever and the changes below it were lost."""
        async with read_tx(self.database, workspace, principal) as conn:
            found = await self.events.stream(conn, stream_of(workspace), cursor, limit)
            if check and not found and cursor > 0:
                newest = await self.events.stream_head(conn, stream_of(workspace))
                if 0 < newest < cursor:
                    said = (
                        f"cursor {cursor} is past the newest change ({newest}): not a cursor this feed gave"
                    )
                    raise InvalidArguments(
                        said,
                        errors=[{"field": "cursor", "error": said}],
                        hint="pass the cursor your last workspace.changes returned; 0 reads from the start",
                    )
        changes = tuple(_change(seq, event) for seq, event in found)
        return ChangePage(changes, changes[-1].id if changes else cursor)

    # -- plumbing ---------------------------------------------------------------------------------

    def _write(self, workspace: str, principal: Principal, needed: Role) -> _Notify:
        return _Notify(self, write_tx(self.database, workspace, principal, needed, self.clock(), self.events))

    def _notify(self) -> None:
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def _charge(self, principal: Principal, cost: int) -> None:
        """Meter ``cost`` credits to an agent; refuse when its budget is spent."""
        if self.credits_per_agent is None or principal.kind != "agent":
            return
        limit = self.credits_per_agent
        async with self.database.transaction() as conn:
            result = await conn.execute(
                ws_credits.update()
                .where(ws_credits.c.principal == principal.id, ws_credits.c.used + cost <= limit)
                .values(used=ws_credits.c.used + cost)
            )
            if result.rowcount:
                return
            row = (
                await conn.execute(sa.select(ws_credits.c.used).where(ws_credits.c.principal == principal.id))
            ).first()
            if row is None and cost <= limit:
                await conn.execute(ws_credits.insert().values(principal=principal.id, used=cost))
                return
        used = int(row.used) if row is not None else 0
        raise QuotaExceeded(
            f"{principal.id} has used {used:,} of its {limit:,} workspace credits; this call costs {cost}",
            limit_name="workspace.credits_per_agent",
            limit=limit,
            used=used,
            hint="ask an operator to raise credits_per_agent of the workspace connector in toolbridge.yaml",
        )

    async def credits_used(self, principal: Principal) -> int:
        async with self.database.transaction() as conn:
            row = (
                await conn.execute(sa.select(ws_credits.c.used).where(ws_credits.c.principal == principal.id))
            ).first()
        return int(row.used) if row is not None else 0


class _Notify:
    """``write_tx`` that wakes long-polling readers after a commit that recorded changes."""

    def __init__(self, owner: Workspaces, inner: object) -> None:
        self._owner = owner
        self._inner = inner
        self._tx: Tx | None = None

    async def __aenter__(self) -> Tx:
        self._tx = await self._inner.__aenter__()  # type: ignore[attr-defined]
        return self._tx

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.__aexit__(*exc_info)  # type: ignore[attr-defined]
        if exc_info[0] is None and self._tx is not None and self._tx.emitted:
            self._owner._notify()
            for event in self._tx.recorded:
                self._owner.events.wake(event)


def _change(seq: int, event: Event) -> Change:
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    return Change(
        seq,
        str(payload.get("kind") or event.type.removeprefix("workspace.")),
        str(payload.get("path") or event.subject or ""),  # the subject is cut at 255 characters
        str(payload.get("principal") or ""),
        event.time.timestamp(),
        dict(payload.get("detail") or {}),
    )
