"""The workspace as a connector: ``workspace.<op>`` tools in the catalog, like any other service.

Every result carries ``next``: the calls that usually make sense after it, so an agent does not have to
guess. Contents travel inline only when small (text as text, binaries as base64 only when tiny); anything
larger is handed over as a short-lived signed URL, never as base64 in the model's context.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from toolbridge.catalog import Tool
from toolbridge.connectors import Invocation
from toolbridge.errors import BadRequest
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace._blobs import BlobStore
from toolbridge.workspace._import import Importer
from toolbridge.workspace._model import Entry, Lease, Role
from toolbridge.workspace._service import Workspaces
from toolbridge.workspace._signing import UrlSigner
from toolbridge.workspace._tools import workspace_tools

if TYPE_CHECKING:
    from toolbridge.events import EventLog

__all__ = ["WorkspaceConnector", "entry_document"]

MIB = 1 << 20


def entry_document(entry: Entry) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": entry.path, "kind": entry.kind}
    if entry.kind == "file":
        doc.update(
            version=entry.version,
            size=entry.size,
            etag=entry.etag,
            content_type=entry.content_type,
            updated_by=entry.updated_by,
            updated_at=entry.updated_at,
        )
        if entry.metadata:
            doc["metadata"] = dict(entry.metadata)
    if entry.trashed:
        doc["trashed"] = True
        doc["trash_id"] = entry.id
    return doc


def _lease_document(lease: Lease, now: float) -> dict[str, Any]:
    return {
        "path": lease.path,
        "lease": lease.token,
        "fence": lease.fence,
        "expires_in": round(lease.expires_at - now, 3),
        "next": [
            f"workspace.write with lease (the token) to change {lease.path}",
            f"workspace.lock with lease again before {lease.ttl:g} s pass to extend it",
            "workspace.unlock with lease when done",
        ],
    }


class WorkspaceConnector:
    """The built-in workspace connector (``kind: workspace``)."""

    def __init__(
        self,
        name: str = "workspace",
        *,
        database: Database,
        blobs: BlobStore,
        workspace: str = "shared",
        members: Mapping[str, Role] | None = None,
        quota_bytes: int | None = None,
        credits_per_agent: int | None = None,
        public_url: str = "http://127.0.0.1:8080",
        signing_secret: bytes | None = None,
        url_ttl: float = 300.0,
        inline_bytes: int = 200_000,
        default_ttl: float = 120.0,
        max_ttl: float = 3600.0,
        importer: Importer | None = None,
        clock: Callable[[], float] = time.time,
        events: EventLog | None = None,
    ) -> None:
        self._name = name
        self.workspace = workspace
        self.members = dict(members or {})
        self.quota_bytes = quota_bytes
        self.public_url = public_url.rstrip("/")
        self.url_ttl = url_ttl
        self.inline_bytes = inline_bytes
        self.importer = importer
        self.clock = clock
        self.service = Workspaces(
            database,
            blobs,
            clock=clock,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
            credits_per_agent=credits_per_agent,
            events=events,
        )
        self.signer = UrlSigner(signing_secret or secrets.token_bytes(32), clock=clock)
        self._tools = workspace_tools(name)

    @property
    def name(self) -> str:
        return self._name

    def tools(self) -> Sequence[Tool]:
        return list(self._tools)

    async def __aenter__(self) -> WorkspaceConnector:
        await self.service.ensure(self.workspace, quota_bytes=self.quota_bytes, members=self.members)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # -- URLs -------------------------------------------------------------------------------------

    def download_url(self, workspace: str, entry: Entry, principal: Principal) -> str:
        params = self.signer.sign(
            "download",
            workspace,
            entry.path,
            principal.id,
            ttl=self.url_ttl,
            version=entry.version,
            key=principal.key_id or "",
        )
        return f"{self.public_url}/v1/workspaces/{workspace}/content?{urllib.parse.urlencode(params)}"

    def upload_urls(self, workspace: str, path: str, principal: Principal, ttl: float) -> dict[str, str]:
        grant = self.signer.sign("upload", workspace, path, principal.id, ttl=ttl, key=principal.key_id or "")
        params = urllib.parse.urlencode(grant)
        base = f"{self.public_url}/v1/workspaces/{workspace}"
        return {"tus": f"{base}/uploads?{params}", "put": f"{base}/content?{params}"}

    # -- invoke -----------------------------------------------------------------------------------

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        op = tool.operation
        handler = getattr(self, f"_op_{op}")
        workspace = str(arguments.get("workspace") or self.workspace)
        result: dict[str, Any] = await handler(invocation.principal, workspace, arguments)
        return result

    async def _op_list(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        path = args.get("path", "/")
        entries = await self.service.list_folder(who, ws, path, trashed=bool(args.get("trashed")))
        return {
            "path": path,
            "entries": [entry_document(e) for e in entries],
            "next": ["workspace.read a file", "workspace.list a sub-folder", "workspace.write a new file"],
        }

    async def _op_read(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        entry = await self.service.locate(who, ws, args["path"], version=args.get("version"))
        start = int(args.get("offset", 0))
        length = args.get("length")
        end = min(entry.size, start + int(length)) if length is not None else entry.size
        size = max(0, end - start)
        doc = entry_document(entry)
        nxt = [f"workspace.write with if_match {entry.etag} to change it safely", "workspace.versions"]
        if size <= self.inline_bytes:
            _, data = await self.service.read(
                who, ws, entry.path, version=entry.version, start=start, end=end
            )
            text = _as_text(data)
            if text is not None and len(json.dumps(text)) <= self.inline_bytes:
                return {**doc, "range": [start, end], "encoding": "text", "content": text, "next": nxt}
            if size <= self.inline_bytes // 4:
                encoded = base64.b64encode(data).decode()
                return {**doc, "range": [start, end], "encoding": "base64", "content": encoded, "next": nxt}
        url = self.download_url(ws, entry, who)
        return {
            **doc,
            "encoding": "url",
            "url": url,
            "expires_in": self.url_ttl,
            "note": "too large to show inline; GET the URL (HTTP Range supported), or read a range with "
            "offset and length",
            "next": nxt,
        }

    async def _op_write(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        data = _decode(args["content"], args.get("encoding", "text"))
        entry = await self.service.write(
            who,
            ws,
            args["path"],
            data,
            content_type=args.get("content_type") or _guess_type(args["path"], args.get("encoding", "text")),
            metadata=args.get("metadata"),
            expected_version=args.get("expected_version"),
            if_match=args.get("if_match"),
            lease=args.get("lease"),
        )
        return {
            **entry_document(entry),
            "next": [f"workspace.read {entry.path}", f"workspace.write with if_match {entry.etag} to update"],
        }

    async def _op_stat(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        entry = await self.service.stat(who, ws, args["path"])
        hint = "workspace.read" if entry.kind == "file" else "workspace.list"
        return {**entry_document(entry), "next": [f"{hint} {entry.path}"]}

    async def _op_move(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        entry = await self.service.move(who, ws, args["source"], args["target"], lease=args.get("lease"))
        return {
            **entry_document(entry),
            "moved_from": args["source"],
            "next": [f"workspace.stat {entry.path}"],
        }

    async def _op_copy(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        entry = await self.service.move(who, ws, args["source"], args["target"], copy=True)
        return {
            **entry_document(entry),
            "copied_from": args["source"],
            "next": [f"workspace.read {entry.path}"],
        }

    async def _op_delete(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        entry = await self.service.delete(
            who, ws, args["path"], lease=args.get("lease"), expected_version=args.get("expected_version")
        )
        return {
            **entry_document(entry),
            "next": [f"workspace.restore path={entry.path} trash_id={entry.id} to undo"],
        }

    async def _op_restore(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if args.get("version") is not None:
            entry = await self.service.restore_version(
                who, ws, args["path"], int(args["version"]), lease=args.get("lease")
            )
        else:
            entry = await self.service.restore(who, ws, args["path"], trash_id=args.get("trash_id"))
        return {**entry_document(entry), "next": [f"workspace.stat {entry.path}"]}

    async def _op_versions(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        versions = await self.service.versions(who, ws, args["path"])
        return {
            "path": args["path"],
            "versions": [
                {"version": v.version, "size": v.size, "created_by": v.created_by, "created_at": v.created_at}
                for v in versions
            ],
            "next": [
                "workspace.read with version to see one",
                "workspace.restore with version to bring one back",
            ],
        }

    async def _op_lock(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        token = args.get("lease")
        if token:
            lease = await self.service.heartbeat(who, ws, args["path"], token, ttl=args.get("ttl"))
        else:
            lease = await self.service.lock(who, ws, args["path"], ttl=args.get("ttl"))
        return _lease_document(lease, self.clock())

    async def _op_unlock(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        await self.service.unlock(who, ws, args["path"], args["lease"])
        return {
            "path": args["path"],
            "released": True,
            "next": ["workspace.changes to follow what others do"],
        }

    async def _op_upload_url(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        from toolbridge.workspace._paths import normalize_path

        path = normalize_path(args["path"])
        # 404 for a workspace the caller cannot see, 403 for a viewer or a path someone else has leased
        await self.service.check_upload(who, ws, path, 0, args.get("lease"))
        ttl = float(args.get("ttl") or self.url_ttl)
        urls = self.upload_urls(ws, path, who, ttl)
        lease_note = " Send the lease token in the Upload-Metadata 'lease' key." if args.get("lease") else ""
        return {
            "path": path,
            **urls,
            "expires_in": ttl,
            "how": "tus 1.0 (resumable; creation, checksum sha256): POST to 'tus' with Upload-Length, "
            "then PATCH the bytes; or PUT the whole body to 'put'." + lease_note,
            "next": [
                f"workspace.stat {path} after the upload completes",
                "workspace.changes for upload.completed",
            ],
        }

    async def _op_import_url(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if self.importer is None:
            raise BadRequest("URL import is not enabled on this workspace connector", hint="ask an operator")
        entry = await self.importer.import_into(
            self.service, who, ws, str(args["url"]), args["path"], lease=args.get("lease")
        )
        return {**entry_document(entry), "source": args["url"], "next": [f"workspace.read {entry.path}"]}

    async def _op_search(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        found = await self.service.search(
            who, ws, name=args.get("name"), metadata=args.get("metadata"), limit=int(args.get("limit", 100))
        )
        return {"results": [entry_document(e) for e in found], "next": ["workspace.read one of the results"]}

    async def _op_changes(self, who: Principal, ws: str, args: Mapping[str, Any]) -> dict[str, Any]:
        await self.service.sweep(who, ws)
        page = await self.service.changes(
            who,
            ws,
            cursor=int(args.get("cursor", 0)),
            limit=int(args.get("limit", 100)),
            wait=float(args.get("wait", 0)),
        )
        changes = [
            {"id": c.id, "kind": c.kind, "path": c.path, "by": c.principal, "at": c.at, **dict(c.detail)}
            for c in page.changes
        ]
        return {
            "changes": changes,
            "cursor": page.cursor,
            "next": [f"workspace.changes with cursor={page.cursor} (and wait) for what happens next"],
        }


def _as_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if "\x00" not in text else None


def _decode(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(
                "content is not valid base64", hint="send base64, or use encoding=text"
            ) from None
    return content.encode("utf-8")


def _guess_type(path: str, encoding: str) -> str:
    import mimetypes

    guessed, _ = mimetypes.guess_type(path)
    return guessed or ("text/plain; charset=utf-8" if encoding == "text" else "application/octet-stream")
