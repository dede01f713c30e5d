"""REST for the workspace: ``/v1/workspaces/...`` — files, HTTP Range downloads, tus 1.0 uploads, the feed.

Authentication is ``Authorization: Bearer <key>`` (as for the rest of ``/v1``) or, for one download or
upload, the signed query parameters a workspace tool handed out. tus upload URLs (``/uploads/<id>``) are
capabilities themselves. Every capability is checked against its holder on each use: the API key it was
issued under must still be valid, the holder must still have the scope and the workspace role. Errors
are RFC 9457 problem documents. Request bodies stream to temporary files: memory stays flat whatever the
file size.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from toolbridge import _jsonin as jsonin
from toolbridge.catalog import Tool
from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ToolbridgeError,
    ToolNotFound,
    problem,
)
from toolbridge.hub import Hub
from toolbridge.policy import Principal
from toolbridge.surfaces._http_errors import PROBLEM as _PROBLEM
from toolbridge.surfaces._http_errors import http_problem
from toolbridge.surfaces._request import api_key, declared_length, presents_key, read_body
from toolbridge.surfaces.rest._openapi import MAX_DIGITS
from toolbridge.workspace import BlobInfo, WorkspaceConnector, normalize_path
from toolbridge.workspace._blobs import hash_file
from toolbridge.workspace._connector import entry_document
from toolbridge.workspace._tus import Upload, UploadStore, parse_metadata

__all__ = ["create_workspace_app", "find_workspace_connector"]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum,expiration"
Handler = Callable[[Request], Awaitable[Response]]


def find_workspace_connector(hub: Hub) -> WorkspaceConnector | None:
    for name in sorted({tool.connector for tool in hub.catalog}):
        connector = hub.connector(name)
        if isinstance(connector, WorkspaceConnector):
            return connector
    return None


def _status_problem(status: int, detail: str, hint: str, headers: dict[str, str]) -> Response:
    """A 415 or 416 (no error of the tree has their status) as a problem document: they had no body."""
    title = {415: "Unsupported Media Type", 416: "Range Not Satisfiable"}[status]
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "hint": hint}
    return Response(json.dumps(body), status_code=status, media_type=_PROBLEM, headers=headers)


def _problem(exc: ToolbridgeError, request: Request) -> Response:
    headers = {"Tus-Resumable": TUS_VERSION}
    if isinstance(exc, PreconditionFailed) and "tus_version" in exc.current:
        headers["Tus-Version"] = TUS_VERSION  # tus 1.0: a 412 for the version names the versions served
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = json.dumps(problem(exc, instance=request.url.path))
    return Response(body, status_code=exc.status, media_type=_PROBLEM, headers=headers)


class WorkspaceApi:
    def __init__(self, hub: Hub, connector: WorkspaceConnector) -> None:
        self.hub = hub
        self.connector = connector
        self.service = connector.service
        self.uploads = UploadStore(
            self.service.blobs.scratch / "uploads", clock=connector.clock, max_size=1 << 40
        )
        self._next_sweep = 0.0

    # -- authentication -----------------------------------------------------------------------

    async def caller(self, request: Request) -> Principal:
        return await self.hub.authenticate(
            api_key(request.headers), request_id=request.headers.get("x-request-id")
        )

    async def caller_or_grant(
        self, request: Request, action: str
    ) -> tuple[Principal, str | None, int | None]:
        """(principal, path the grant is for or None, version or None)."""
        params = request.query_params
        op = "read" if action == "download" else "write"
        if "sig" in params and "authorization" not in request.headers:
            workspace = request.path_params["ws"]
            grant = self.connector.signer.verify(action, workspace, dict(params))
            return await self.holder(grant.principal, grant.key, op), grant.path, grant.version or None
        who = await self.caller(request)
        self.authorize(who, op)
        return who, None, None

    async def uploader(self, request: Request, upload: Upload) -> Principal:
        """Who acts on a tus upload: its holder (the URL is a capability). A request that also presents an
        agent's key must present the holder's: another agent's went through as the holder, and the audit
        row named someone who never sent it."""
        who = await self.holder(upload.principal, upload.key, "write")
        if presents_key(request.headers):
            sender = await self.caller(request)
            if sender.id != who.id:
                raise PermissionDenied(
                    f"upload {upload.id} belongs to {who.id}, not to {sender.id} whose key came with it",
                    missing_scope="",
                    hint="resume an upload with the key that created it (or with its URL alone)",
                )
        return who

    async def holder(self, principal_id: str, key: str, op: str) -> Principal:
        """Who a capability (signed URL, tus upload) was issued to, looked up now: a revoked key or a
        lost scope refuses it at once (the workspace role is checked by the operation itself)."""
        who = await self.hub.agents.holder(principal_id, key or None)
        try:
            self.authorize(who, op)
        except ToolNotFound:
            raise AuthenticationError(
                f"{principal_id} may no longer {op} here, so this URL is void",
                hint="ask an operator for the scope, then for a new URL",
            ) from None
        return who

    def performed(
        self, request: Request, who: Principal, action: str, scope: str | None, **arguments: Any
    ) -> AbstractAsyncContextManager[Tool | None]:
        """A route's work as ``who``'s action ``workspace.<action>`` through ``Hub.perform``: authorized
        as the ``workspace.<scope>`` tool (None: membership alone decides), rate-limited, audited once."""
        name = self.connector.name
        return self.hub.perform(
            who,
            f"{name}.{action}",
            {"workspace": request.path_params.get("ws"), **arguments},
            scope=None if scope is None else f"{name}.{scope}",
            request_id=request.headers.get("x-request-id"),
        )

    # -- workspaces ---------------------------------------------------------------------------

    async def list_workspaces(self, request: Request) -> Response:
        who = await self.caller(request)
        async with self.performed(request, who, "workspaces", None):
            found = await self.service.workspaces(who)
        return JSONResponse(
            {"workspaces": [{"id": w.id, "name": w.name, "role": w.role.label} for w in found]}
        )

    async def create_workspace(self, request: Request) -> Response:
        who = await self.caller(request)
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise BadRequest("'name' must be 1-128 characters", hint='send {"name": "my workspace"}')
        async with self.performed(request, who, "create_workspace", None, name=name):
            info = await self.service.create(who, name)
        return JSONResponse({"id": info.id, "name": info.name, "role": info.role.label}, status_code=201)

    async def workspace_info(self, request: Request) -> Response:
        who = await self.caller(request)
        async with self.performed(request, who, "info", None):
            info = await self.service.info(who, request.path_params["ws"])
        return JSONResponse(
            {
                "id": info.id,
                "name": info.name,
                "role": info.role.label,
                "quota_bytes": info.quota_bytes,
                "used_bytes": info.used_bytes,
            }
        )

    # -- files --------------------------------------------------------------------------------

    async def files(self, request: Request) -> Response:
        q = request.query_params
        trashed = q.get("trashed", "false")
        if trashed not in ("true", "false", "1", "0"):  # any other word listed the files, not the trash
            raise BadRequest(
                f"trashed must be true or false, not {trashed!r}", hint="send trashed=true or leave it out"
            )
        args: dict[str, Any] = {"path": q.get("path", "/"), "trashed": trashed in ("1", "true")}
        return await self.call(request, "list", args)

    async def call(self, request: Request, op: str, arguments: dict[str, Any]) -> Response:
        """A control operation as the matching ``workspace.*`` tool, through ``Hub.call`` (scopes, audit)."""
        who = await self.caller(request)
        arguments = {"workspace": request.path_params["ws"], **arguments}
        result = await self.hub.call(
            who, f"{self.connector.name}.{op}", arguments, request_id=request.headers.get("x-request-id")
        )
        if result.truncated:
            return JSONResponse({"truncated": True, "text": result.text})
        return JSONResponse(result.value)

    def authorize(self, who: Principal, op: str) -> None:
        """Scope check for the data-plane routes (downloads, uploads) that stream instead of calling:
        outside the principal's scopes the tool is missing (404), as in ``Hub.call``."""
        self.hub.get_tool(who, f"{self.connector.name}.{op}")

    async def stat(self, request: Request) -> Response:
        return await self.call(request, "stat", {"path": _path(request)})

    async def versions(self, request: Request) -> Response:
        return await self.call(request, "versions", {"path": _path(request)})

    async def download(self, request: Request) -> Response:
        who, granted, version = await self.caller_or_grant(request, "download")
        path = granted or _path(request)
        if version is None and "version" in request.query_params:
            version = _int(request.query_params["version"], "version")
        async with self.performed(request, who, "download", "read", path=path, version=version):
            return await self._download(request, who, path, version)

    async def _download(self, request: Request, who: Principal, path: str, version: int | None) -> Response:
        entry = await self.service.locate(who, request.path_params["ws"], path, version=version)
        headers = {
            "ETag": entry.etag,
            "Accept-Ranges": "bytes",
            "X-Version": str(entry.version),
            "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(entry.sha256)).decode(),
            **_INERT,
        }
        if request.headers.get("if-none-match") == entry.etag:
            return Response(status_code=304, headers=headers)
        span = _range(request.headers.get("range"), entry.size)
        if span is None:
            start, end, status = 0, entry.size, 200
        elif span == (-1, -1):
            asked = request.headers.get("range", "")
            return _status_problem(
                416,
                f"the range {asked[:80]!r} lies outside the file's {entry.size:,} bytes",
                f"ask for bytes within 0-{max(entry.size - 1, 0)}, or leave Range out",
                {**headers, "Content-Range": f"bytes */{entry.size}"},
            )
        else:
            (start, end), status = span, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
        headers["Content-Length"] = str(end - start)
        body = self.service.blobs.stream(entry.sha256, start, end)
        first = await anext(body, b"")  # a missing blob fails here, as a problem document, before any header
        return StreamingResponse(
            _then(first, body), status_code=status, headers=headers, media_type=entry.content_type
        )

    async def put(self, request: Request) -> Response:
        who, granted, _ = await self.caller_or_grant(request, "upload")
        workspace, path = request.path_params["ws"], granted or _path(request)
        async with self.performed(request, who, "upload", "write", path=path):
            return await self._put(request, who, workspace, path)

    async def _put(self, request: Request, who: Principal, workspace: str, path: str) -> Response:
        await self.service.info(who, workspace)
        expected, if_match = request.headers.get("x-expected-version"), request.headers.get("if-match")
        if expected is not None:  # an empty one was no condition at all: the file was overwritten
            expected_version: int | None = _int(expected, "X-Expected-Version")
        else:
            expected_version = None
        if if_match is not None and not if_match.strip():
            raise BadRequest("If-Match is empty", hint="send the ETag you read (or *), or leave If-Match out")
        temp, blob = await self._receive(request)
        try:
            entry = await self.service.commit(
                who,
                workspace,
                path,
                temp,
                blob,
                content_type=request.headers.get("content-type", ""),
                lease=request.headers.get("x-lease"),
                expected_version=expected_version,
                if_match=if_match,
                source="put",
            )
        finally:
            await anyio.Path(temp).unlink(missing_ok=True)
        return JSONResponse(entry_document(entry), status_code=201 if entry.version == 1 else 200)

    async def _receive(self, request: Request) -> tuple[Path, BlobInfo]:
        fd, name = tempfile.mkstemp(dir=self.service.blobs.scratch, prefix="put-")
        os.close(fd)
        temp = Path(name)
        try:
            async with await anyio.open_file(temp, "wb") as f:
                async for chunk in request.stream():
                    await f.write(chunk)
            return temp, await anyio.to_thread.run_sync(hash_file, temp)
        except BaseException:  # a client gone mid-upload, a full disk, a cancellation: no scratch file left
            await anyio.Path(temp).unlink(missing_ok=True)
            raise

    async def delete(self, request: Request) -> Response:
        args: dict[str, Any] = {"path": _path(request)}
        if request.headers.get("x-lease"):
            args["lease"] = request.headers["x-lease"]
        return await self.call(request, "delete", args)

    async def changes(self, request: Request) -> Response:
        q = request.query_params
        wait = max(0.0, min(_float(q.get("wait", "0") or "0", "wait"), 30.0))
        args = {"cursor": _int(q.get("cursor", "0"), "cursor"), "limit": _int(q.get("limit", "100"), "limit")}
        return await self.call(request, "changes", {**args, "wait": wait})

    async def import_url(self, request: Request) -> Response:
        body = await _json(request)
        args = {k: body[k] for k in ("url", "path", "lease") if body.get(k) is not None}
        response = await self.call(request, "import_url", args)
        response.status_code = 201
        return response

    # -- tus 1.0 ------------------------------------------------------------------------------

    def _tus_headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}

    async def tus_options(self, request: Request) -> Response:
        return Response(
            status_code=204,
            headers=self._tus_headers(
                **{
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": TUS_EXTENSIONS,
                    "Tus-Checksum-Algorithm": "sha256",
                    "Tus-Max-Size": str(self.uploads.max_size),
                }
            ),
        )

    async def tus_create(self, request: Request) -> Response:
        _check_tus(request)
        who, granted, _ = await self.caller_or_grant(request, "upload")
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        if metadata.get("sha256") and len(_digest_hex(metadata["sha256"])) != 64:  # else: refused at the end
            raise BadRequest(
                "the 'sha256' in Upload-Metadata is no SHA-256 digest",
                hint="send the whole file's digest as 64 hex digits or its 32 bytes in base64 (or no sha256)",
            )
        path = granted or metadata.get("path") or metadata.get("filename")
        if not path:
            raise BadRequest("the upload names no path", hint="send Upload-Metadata with a 'path' key")
        length = request.headers.get("upload-length")
        if length is None:
            raise BadRequest("Upload-Length is required (deferred length is not supported)", hint="send it")
        path = normalize_path(path)
        async with self.performed(request, who, "upload.create", "write", path=path, length=length):
            return await self._tus_create(request, who, path, length, metadata)

    async def _tus_create(
        self, request: Request, who: Principal, path: str, length: str, metadata: dict[str, str]
    ) -> Response:
        workspace = request.path_params["ws"]
        # fail before any byte is sent: workspace visible, may write, lease free or held, quota has room
        await self.service.check_upload(
            who, workspace, path, _int(length, "Upload-Length"), metadata.get("lease")
        )
        if self.connector.clock() >= self._next_sweep:  # expiration: drop abandoned uploads now and then
            self._next_sweep = self.connector.clock() + 60.0
            await self.uploads.sweep()
        upload = await self.uploads.create(
            workspace, path, who.id, _int(length, "Upload-Length"), metadata, key=who.key_id or ""
        )
        location = f"{request.url.path.rstrip('/')}/{upload.id}"
        headers = self._tus_headers(Location=location, **{"Upload-Expires": _http_date(upload.expires_at)})
        if upload.length == 0:
            await self._commit(upload.id)
        return Response(status_code=201, headers=headers)

    async def tus_head(self, request: Request) -> Response:
        _check_tus(request)
        upload_id = request.path_params["upload"]
        async with self.uploads.lock(upload_id):  # an interrupted PATCH still writing finishes first
            upload = await self.uploads.get(upload_id)
            who = await self.uploader(request, upload)
            async with self.performed(request, who, "upload.status", "write", upload=upload_id):
                pass
        return Response(
            status_code=200,
            headers=self._tus_headers(
                **{
                    "Upload-Offset": str(upload.offset),
                    "Upload-Length": str(upload.length),
                    "Upload-Expires": _http_date(upload.expires_at),
                }
            ),
        )

    async def tus_patch(self, request: Request) -> Response:
        _check_tus(request)
        kind = request.headers.get("content-type")
        if kind != "application/offset+octet-stream":
            return _status_problem(
                415,
                f"a tus PATCH body is sent as application/offset+octet-stream, not {kind!r}",
                "send the chunk with Content-Type: application/offset+octet-stream",
                self._tus_headers(),
            )
        upload_id = request.path_params["upload"]
        checksum = _checksum(request.headers.get("upload-checksum"))
        offset = _int(request.headers.get("upload-offset", ""), "Upload-Offset")
        async with self.uploads.lock(upload_id):
            upload = await self.uploads.get(upload_id)
            who = await self.uploader(request, upload)
            async with self.performed(
                request, who, "upload.append", "write", upload=upload_id, offset=offset
            ):
                return await self._tus_patch(request, upload, who, offset, checksum)

    async def _tus_patch(
        self,
        request: Request,
        upload: Upload,
        who: Principal,
        offset: int,
        checksum: tuple[str, bytes] | None,
    ) -> Response:
        # before any byte is written: still an editor, the lease still free or held
        await self.service.check_upload(who, upload.workspace, upload.path, 0, upload.metadata.get("lease"))
        try:
            new_offset = await self.uploads.append(upload, offset, _body(request), checksum)
        except ClientDisconnect:
            return Response(status_code=400, headers=self._tus_headers())
        headers = self._tus_headers(
            **{"Upload-Offset": str(new_offset), "Upload-Expires": _http_date(upload.expires_at)}
        )
        if new_offset == upload.length:
            entry = await self._commit(upload.id)
            headers["X-Version"] = str(entry["version"])
            headers["ETag"] = str(entry["etag"])
        return Response(status_code=204, headers=headers)

    async def _commit(self, upload_id: str) -> dict[str, Any]:
        upload = await self.uploads.get(upload_id)
        part = self.uploads.part_path(upload)
        blob = await anyio.to_thread.run_sync(hash_file, part)
        wanted = upload.metadata.get("sha256")
        if wanted and _digest_hex(wanted) != blob.sha256:
            await self.uploads.delete(upload_id)
            raise PreconditionFailed(
                "the uploaded file's sha256 does not match the 'sha256' in Upload-Metadata; it was discarded",
                current={"sha256": blob.sha256},
                hint="upload the file again",
            )
        entry = await self.service.commit(
            await self.holder(upload.principal, upload.key, "write"),
            upload.workspace,
            upload.path,
            part,
            blob,
            content_type=upload.metadata.get("filetype") or upload.metadata.get("content_type", ""),
            lease=upload.metadata.get("lease"),
        )
        await self.uploads.delete(upload_id)
        return entry_document(entry)

    async def tus_delete(self, request: Request) -> Response:
        _check_tus(request)
        upload_id = request.path_params["upload"]
        async with self.uploads.lock(upload_id):
            upload = await self.uploads.get(upload_id)
            who = await self.uploader(request, upload)
            async with self.performed(request, who, "upload.cancel", "write", upload=upload_id):
                await self.uploads.delete(upload_id)
        return Response(status_code=204, headers=self._tus_headers())


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _check_tus(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise PreconditionFailed(
            f"Tus-Resumable {version!r} is not supported",
            current={"tus_version": TUS_VERSION},
            hint="send Tus-Resumable: 1.0.0",
        )


def _checksum(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise BadRequest(f"checksum algorithm {algorithm!r} is not supported", hint="use sha256")
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum is not base64", hint="send 'sha256 <base64 digest>'") from None
    if len(digest) != 32:  # an empty or cut value was a 460 "does not match", as if the chunk were bad
        raise BadRequest(
            f"Upload-Checksum's sha256 digest is {len(digest)} bytes, not 32",
            hint="send 'sha256 <the chunk's 32-byte digest in base64, 44 characters>'",
        )
    return "sha256", digest


def _digest_hex(value: str) -> str:
    """A SHA-256 digest given as hex or base64, as lower-case hex ("" when it is neither)."""
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return ""


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)


def _path(request: Request) -> str:
    path = request.query_params.get("path")
    if not path:
        raise BadRequest("the 'path' query parameter is required", hint="add ?path=/folder/file.txt")
    return path


def _int(value: str | None, name: str) -> int:
    """A count, offset, version or cursor: 1 to 18 ASCII digits (the document's pattern and maximum). Python's
    ``int`` also took ``-5`` (a 413 "the upload is -5 bytes, over the limit", a 412 for version -5), ``1_0``,
    other scripts' digits, and numbers past the 64 bits the database stores (a 502)."""
    if value and len(value) <= MAX_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    raise BadRequest(
        f"{name} must be a whole number of 1 to {MAX_DIGITS} digits, not {value[:40]!r}"
        if value is not None
        else f"{name} is missing",
        hint=f"send a whole number for {name}",
    )


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise BadRequest(f"{name} must be a number, not {value!r}", hint=f"send seconds for {name}, e.g. 5")
    return number


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` for a single ``bytes=`` range; None to send everything; (-1, -1) if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:
            suffix = int(last)
            return (max(0, size - suffix), size) if suffix > 0 and size > 0 else (-1, -1)
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return (-1, -1)
    return start, end


_INERT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}
"""A file keeps the type it was stored with, but never runs as a page of this origin: an agent's HTML or
SVG opened in a browser (signed download URLs are made for that) is sandboxed, loads nothing, and is
not sniffed into something else."""


async def _json(request: Request) -> dict[str, Any]:
    raw = await read_body(request.stream(), limit=65_536, declared=declared_length(request.headers))
    try:
        data = jsonin.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", hint="send a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", hint="send a JSON object")
    return data


def _guard(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ToolbridgeError as exc:
            return _problem(exc, request)

    return run


def create_workspace_app(hub: Hub) -> Starlette:
    """The ``/v1/workspaces`` application (mount it there, before ``/v1``).

    Without a workspace connector in the hub, every route answers 404.
    """
    state: dict[str, WorkspaceApi] = {}

    def api() -> WorkspaceApi:
        if "api" not in state:
            connector = find_workspace_connector(hub)
            if connector is None:
                raise NotFound("this server has no workspace", hint="add a 'kind: workspace' connector")
            state["api"] = WorkspaceApi(hub, connector)
        return state["api"]

    def route(path: str, name: str, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            handler: Handler = getattr(api(), name)
            return await handler(request)

        served = Route(path, _guard(endpoint), methods=methods)
        served.methods = set(methods)  # exactly those (Starlette adds HEAD to GET): as documented
        return served

    routes = [
        route("/", "list_workspaces", ["GET"]),
        route("/", "create_workspace", ["POST"]),
        route("/{ws}", "workspace_info", ["GET"]),
        route("/{ws}/files", "files", ["GET"]),
        route("/{ws}/stat", "stat", ["GET"]),
        route("/{ws}/versions", "versions", ["GET"]),
        route("/{ws}/content", "download", ["GET"]),
        route("/{ws}/content", "put", ["PUT"]),
        route("/{ws}/content", "delete", ["DELETE"]),
        route("/{ws}/changes", "changes", ["GET"]),
        route("/{ws}/import", "import_url", ["POST"]),
        route("/{ws}/uploads", "tus_options", ["OPTIONS"]),
        route("/{ws}/uploads", "tus_create", ["POST"]),
        route("/{ws}/uploads/{upload}", "tus_head", ["HEAD"]),
        route("/{ws}/uploads/{upload}", "tus_patch", ["PATCH"]),
        route("/{ws}/uploads/{upload}", "tus_delete", ["DELETE"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_problem(request, exc, routes)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``first``, then the rest of the stream it was read from."""
    if first:
        yield first
    async for chunk in rest:
        yield chunk
